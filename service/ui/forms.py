"""The status page's two small pages: the token prompt and an error page."""

from __future__ import annotations

from service.ui.page import document
from service.ui.text import esc


def login_page(next_path: str, error: str | None = None) -> str:
    """A form posting the token to /ui/login (it sets the page's cookie, see service.ui.auth)."""
    message = "" if error is None else f'<p class="error" role="alert">{esc(error)}</p>'
    body = (
        "<header><h1>Candor calibration</h1></header><main>"
        '<form class="login" method="post" action="/ui/login">'
        "<p>This Candor requires its bearer token for inference, and for this page. "
        "Enter it once: a cookie for this page (not the token itself) keeps you signed in.</p>"
        f'{message}<label for="token">Token</label>'
        '<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<button type="submit">Sign in</button></form></main>'
    )
    return document("Candor calibration: sign in", body)


def error_page(status: int, message: str) -> str:
    """An HTML error with a way back to the overview."""
    body = (
        f"<header><h1>Candor calibration</h1></header><main><h2>{status}</h2>"
        f'<p class="error">{esc(message)}</p><p><a href="/ui">all models</a></p></main>'
    )
    return document(f"Candor calibration: {status}", body)
