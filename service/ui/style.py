"""The status page's stylesheet, inlined in <style>, and the Content-Security-Policy that admits
exactly it (by its sha256) and nothing else: no script, no remote asset, no frame, forms only to
this origin."""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root{--ok:#1b7f3b;--drift:#b3261e;--idle:#6b6b6b;--ink:#1d1d1f;--mute:#5f6368;--line:#d9d9de;
--bar:#3b6fb6;--gap:#e4572e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:#f6f6f8}
header,main,footer{max-width:1100px;margin:0 auto;padding:12px 16px}
h1{font-size:1.4rem;margin:0 0 4px}h2{font-size:1.2rem;margin:0}h3{font-size:1rem;margin:14px 0 6px}
a{color:#1a57a8}.meta,.note,figcaption{color:var(--mute);font-size:.85rem}
.model{background:#fff;border:1px solid var(--line);border-radius:10px;padding:12px 16px;margin:16px 0}
.version{border-top:1px solid var(--line);padding-top:10px;margin-top:10px}
.version:first-of-type{border-top:0;margin-top:0}
.head{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.verdict{display:inline-block;border-radius:999px;padding:1px 10px;color:#fff;font-weight:600;font-size:.85rem}
.verdict-ok{background:var(--ok)}.verdict-drift{background:var(--drift)}
.verdict-insufficient_data{background:var(--idle)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px 3px 0;border-bottom:1px solid #eee;vertical-align:top}
th{font-weight:500;color:var(--mute);white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:8px 24px;margin:8px 0}
figure{margin:0}svg{width:100%;max-width:360px;height:auto;display:block}
.frame{fill:none;stroke:#aaa}.diagonal{stroke:#888;stroke-dasharray:4 3}
.acc,.live{fill:var(--bar)}.gap{fill:var(--gap);fill-opacity:.55}
polyline.ref{fill:none;stroke:#222;stroke-width:1.5}circle.ref{fill:#222}
rect.ref{fill:none;stroke:#222;stroke-width:1.2}
.tick{font-size:10px;fill:var(--mute)}.axis{font-size:11px;fill:var(--ink)}
.classes{word-break:break-word}.map{max-width:640px}
form.login{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px;max-width:420px}
input[type=password]{width:100%;padding:8px;font:inherit;margin:6px 0 10px}
button{font:inherit;padding:6px 14px}.error{color:var(--drift)}
.inline{display:inline}
"""


def _sha256_source(text: str) -> str:
    """A CSP hash source for an inline element's exact content."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_sha256_source(CSS)}; img-src data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
