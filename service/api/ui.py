"""``GET /ui`` and ``/ui/models/{m}``: the calibration status page (service.ui), for people without
Grafana. Server-rendered, no script, a strict CSP; behind the token when inference is
(service.ui.auth: a cookie set from it by ``POST /ui/login``)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import MonitoringDep, RepositoryDep, SettingsDep
from service.errors import ModelNotFound
from service.inference.repository import Repository
from service.monitor.wiring import Monitoring
from service.settings import Settings
from service.ui import auth
from service.ui.cache import PageCache
from service.ui.forms import error_page, login_page
from service.ui.page import status_page
from service.ui.style import HEADERS
from service.ui.view import page_views

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 4096


def html(content: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """An HTML answer with the page's security headers (CSP, no-store, nosniff, no framing)."""
    return HTMLResponse(content, status_code=status, headers={**HEADERS, **(headers or {})})


@router.get("/ui", response_class=HTMLResponse)
async def overview(
    request: Request, settings: SettingsDep, repository: RepositoryDep, monitoring: MonitoringDep
) -> Response:
    """Every monitored model and version: a summary table, then each one in full."""
    return await render(request, settings, repository, monitoring, None)


@router.get("/ui/models/{model_name}", response_class=HTMLResponse)
async def one_model(
    model_name: str, request: Request, settings: SettingsDep, repository: RepositoryDep, monitoring: MonitoringDep
) -> Response:
    """Every version of one model; 404 (HTML) for a model neither monitored nor loaded."""
    return await render(request, settings, repository, monitoring, model_name)


async def render(
    request: Request, settings: Settings, repository: Repository, monitoring: Monitoring, model: str | None
) -> Response:
    """The token prompt (401) unless signed in; else the page, rendered at most once a second
    (service.ui.cache) in the thread pool, as ``GET /v1/models/{m}/calibration`` runs its status."""
    if not auth.signed_in(request, settings):
        return html(login_page(request.url.path), 401, {"WWW-Authenticate": "Bearer"})

    def build() -> str:
        views = page_views(monitoring.monitor, repository, model)
        return status_page(views, settings.ui_refresh_s, model, auth.required(settings))

    cache: PageCache = request.app.state.ui_pages
    try:
        return html(await cache.get(model, lambda: run_in_threadpool(build)))
    except ModelNotFound as exc:
        return html(error_page(404, str(exc)), 404)


@router.post("/ui/login")
async def login(request: Request, settings: SettingsDep) -> Response:
    """Check the token of the form; right: 303 to ``next`` with the cookie; wrong: 401 prompt."""
    form = await read_form(request)
    if form is None:
        return html(error_page(413, f"the sign-in form takes at most {MAX_FORM_BYTES} bytes"), 413)
    next_path = auth.safe_next(form.get("next", "/ui"))
    if auth.required(settings) and not auth.token_ok(settings, form.get("token", "")):
        return html(login_page(next_path, "That is not the token."), 401, {"WWW-Authenticate": "Bearer"})
    response = RedirectResponse(next_path, status_code=303, headers=HEADERS)
    if auth.required(settings):
        auth.set_cookie(response, request, settings)
    return response


@router.post("/ui/logout")
async def logout() -> Response:
    """Drop the cookie and go back to /ui (which asks for the token again)."""
    response = RedirectResponse("/ui", status_code=303, headers=HEADERS)
    auth.clear_cookie(response)
    return response


async def read_form(request: Request) -> dict[str, str] | None:
    """The url-encoded form's first value per field; None when the body is too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
