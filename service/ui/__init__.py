"""The calibration status page (``GET /ui``): server-rendered HTML with inline SVG, no script.

``view`` gathers what a page shows (one monitor snapshot per model version, its status and its
manifest), ``svg`` draws the reliability diagram and the confidence histogram, ``page`` writes the
HTML, ``style`` holds the stylesheet and the Content-Security-Policy that admits it, ``auth`` the
cookie that stands for the bearer token in a browser.
"""
