"""``candor recalibrate MODEL[/VERSION] --window 2h --method ts --promote auto|never [--url URL]``.

When a server answers at the URL (default: http://<CANDOR_HOST>:<CANDOR_PORT>), the command goes
through its endpoint (token from CANDOR_AUTH_TOKEN): the SQLite store belongs to the running
server and is never opened beside it. When none answers at the default URL, the command opens the
store itself and does the same work offline (an explicit --url that does not answer is an error);
promotion then moves the candidate into models_dir, served at the next start. Prints the answer
as JSON; exit 0 with any outcome, 2 on bad usage or a refused call.
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.error
import urllib.request
from typing import Any

from service.errors import ServiceError
from service.settings import Settings

DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")
UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
METHODS = ("ts", "fts", "best", "prior-shift")


def add_arguments(command: argparse.ArgumentParser) -> None:
    """The command's arguments (service/cli.py registers it and loads the settings)."""
    command.add_argument("target", metavar="MODEL[/VERSION]", help="model (its default version) or model/version")
    command.add_argument("--window", type=duration, required=True, help="how far back to read: 30m, 2h, 1d, 90s")
    command.add_argument("--method", choices=METHODS, required=True, help="ts, fts, best or prior-shift")
    command.add_argument("--promote", choices=("auto", "never"), default="never", help="auto: only when better")
    command.add_argument("--url", help="server to go through (default http://CANDOR_HOST:CANDOR_PORT)")


def duration(text: str) -> float:
    """'30m' -> 1800.0; argparse turns a ValueError into a usage error (exit 2)."""
    match = DURATION.match(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use a number and s, m, h or d, e.g. 2h")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def recalibrate(settings: Settings, args: argparse.Namespace) -> int:
    """Through the server when one answers, else offline; prints the answer as JSON."""
    model, _, version = args.target.partition("/")
    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    token = None if settings.auth_token is None else settings.auth_token.get_secret_value()
    body = {"method": args.method, "window_seconds": args.window, "promote": args.promote}
    if server_answers(url):
        answer = through_server(url, model, version or None, body, token)
    elif args.url:
        raise ServiceError(f"no server answers at {url} (--url): start it, or leave --url out to work offline")
    else:
        answer = offline(settings, model, version or None, args)
    print(json.dumps(answer, indent=2))
    return 0


def server_answers(url: str) -> bool:
    """True when GET <url>/v2/health/live answers at all (within 2 s)."""
    try:
        with urllib.request.urlopen(f"{url}/v2/health/live", timeout=2.0):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def through_server(url: str, model: str, version: str | None, body: dict[str, Any], token: str | None) -> Any:
    """POST the endpoint; an error answer becomes a ServiceError naming its field (exit 2)."""
    path = f"/v2/repository/models/{model}" + (f"/versions/{version}" if version else "") + "/recalibrate"
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url + path, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600.0) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            error = {}
        hint = " (set CANDOR_AUTH_TOKEN)" if exc.code == 401 else ""
        raise ServiceError(f"{url}{path} answered {exc.code}: {error.get('error', exc.reason)}{hint}") from None


def offline(settings: Settings, model: str, version: str | None, args: argparse.Namespace) -> Any:
    """No server: open the store (one process per SQLite file), run, close."""
    from service.api.v2.recalibration import answer_of
    from service.monitor import MonitorError
    from service.monitor.wiring import open_store
    from service.recalibration.runner import run_offline

    try:
        store = open_store(settings)
    except MonitorError as exc:
        raise ServiceError(f"{exc}; if a server owns the store, pass --url where it listens") from None
    try:
        verdict = run_offline(settings, store, model, version, args.method, args.window, args.promote)
    finally:
        store.close()
    return answer_of(verdict).model_dump(mode="json")
