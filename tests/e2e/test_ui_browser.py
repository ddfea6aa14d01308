"""The status page in a real browser: Debian's Chromium (/usr/bin/chromium, never downloaded),
driven by Playwright, against a real `candor serve` fed with a stream whose labels make one model
drift and leave another calibrated.

digits-steady/1 gets true labels, digits-drift/1 gets labels of which 40% are wrong (the accuracy
falls while the confidence stays: drift), digits-steady/2 gets predictions and no label
(insufficient data, label-free signals only). One class of digits-drift is named like a script.
``CANDOR_UPDATE_SCREENSHOT=1`` also writes the screenshot to docs/ui-status-page.png.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from e2e_processes import REPO_ROOT, serve_process
from model_copies import copy_version, edit_manifest

from training.data import load_digits

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_CLASS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
N, WRONG_FRACTION = 300, 0.4
EXPECTED = {("digits-steady", "1"): "ok", ("digits-drift", "1"): "drift", ("digits-steady", "2"): "insufficient data"}
SCREENSHOT = REPO_ROOT / "docs" / "ui-status-page.png"


@pytest.fixture(scope="module")
def models(digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui-browser") / "models"
    for name in ("digits-steady", "digits-drift"):
        shutil.copytree(digits_artifact.models_dir / "digits-cnn", root / name)
        edit_manifest(root / name / "1", lambda m, name=name: m.update(name=name))
    edit_manifest(root / "digits-drift" / "1", lambda m: m["classes"].__setitem__(3, HOSTILE_CLASS))
    copy_version(root, root, "digits-steady", "1", "2")
    return root


def predict(url: str, model: str, images: np.ndarray, headers: dict[str, str]) -> list[str]:
    response = httpx.post(
        f"{url}/v1/models/{model}:predict", json={"instances": images.tolist()}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    return [p["prediction_id"] for p in response.json()["predictions"]]


def feed(url: str, headers: dict[str, str] | None = None) -> None:
    """The stream: predictions for the three versions, labels for the two version-1 models."""
    headers = headers or {}
    digits = load_digits()
    images, truth = digits.test_x[:N, 0], digits.test_y[:N]
    steady, drifting = predict(url, "digits-steady", images, headers), predict(url, "digits-drift", images, headers)
    tensor = {"name": "images", "datatype": "FP32", "shape": [60, 8, 8], "data": images[:60].ravel().tolist()}
    body = {"inputs": [tensor]}
    infer = httpx.post(f"{url}/v2/models/digits-steady/versions/2/infer", json=body, headers=headers, timeout=60)
    assert infer.status_code == 200, infer.text
    wrong = np.random.default_rng(0).uniform(size=N) < WRONG_FRACTION
    given = np.where(wrong, (truth + 1) % 10, truth)
    labels = [{"prediction_id": p, "label": str(y)} for p, y in zip(steady, truth, strict=True)]
    labels += [
        {"prediction_id": p, "label": HOSTILE_CLASS if y == 3 else str(y)} for p, y in zip(drifting, given, strict=True)
    ]
    counts = httpx.post(f"{url}/v1/feedback", json={"labels": labels}, headers=headers, timeout=60).json()
    assert counts["accepted"] == 2 * N, counts


SERVE_ENV = {"CANDOR_DRIFT_MIN_LABELS": "100", "CANDOR_DEFAULT_VERSIONS": json.dumps({"digits-steady": "1"})}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Chromium with a fresh profile directory; closed at the end."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/system-deps.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1180, "height": 1400},
        )
        yield context
        context.close()


class Watch:
    """Every console error, page error, failed request, HTTP error and foreign request of a page."""

    def __init__(self, page, base: str) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("request", lambda r: r.url.startswith((base, "data:")) or self.problems.append(f"foreign: {r.url}"))
        page.on("response", lambda r: r.status < 400 or self.problems.append(f"HTTP {r.status}: {r.url}"))


def section(model: str, version: str) -> str:
    return f'section.version[data-model="{model}"][data-version="{version}"]'


def shown_figures(page, model: str, version: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{section(model, version)} [data-key]", "els => els.map(e => [e.dataset.key, e.dataset.value, e.textContent])"
    )


def api_value(status: dict, key: str) -> object:
    value: object = status
    for part in key.split("."):
        assert isinstance(value, dict), key
        value = value[part]
    return value


def test_page_shows_each_verdict_bins_and_the_api_numbers(browser, models: Path, tmp_path: Path) -> None:
    with serve_process(models, SERVE_ENV) as url:
        feed(url)
        page = browser.new_page()
        watch = Watch(page, url)
        assert page.goto(f"{url}/ui").status == 200
        for (model, version), verdict in EXPECTED.items():
            status = httpx.get(f"{url}/v1/models/{model}/calibration", params={"version": version}).json()
            assert page.inner_text(f"{section(model, version)} .verdict") == verdict
            bins = page.locator(f"{section(model, version)} svg.reliability g.bin")
            assert bins.count() == len(status["reliability"]) == 15
            assert page.locator(f"{section(model, version)} svg.reliability").bounding_box()["width"] > 200
            figures = shown_figures(page, model, version)
            assert len(figures) >= 15
            for key, value, _ in figures:
                assert json.loads(value) == json.loads(json.dumps(api_value(status, key))), (model, version, key)
            shown = dict((k, text) for k, _, text in figures)
            ece = status["window"]["ece"]
            assert shown["window.ece"] == ("\u2013" if ece is None else f"{100 * ece:.2f}%")
        assert page.get_by_text(HOSTILE_CLASS).count() == 1  # shown as text, in the map's class list
        assert page.evaluate("document.scripts.length + document.querySelectorAll('img').length") == 0
        page.screenshot(path=str(tmp_path / "ui.png"))
        if os.environ.get("CANDOR_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(tmp_path / "ui.png", SCREENSHOT)
        phone = browser.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone_watch = Watch(phone, url)
        assert phone.goto(f"{url}/ui/models/digits-drift").status == 200
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert phone.inner_text(f"{section('digits-drift', '1')} .verdict") == "drift"
        page.close(), phone.close()
    assert watch.problems == [] and phone_watch.problems == []


def test_token_prompt_sets_a_cookie_that_opens_the_page(browser, models: Path) -> None:
    token = "browser-token"
    env = {**SERVE_ENV, "CANDOR_AUTH_TOKEN": token, "CANDOR_AUTH_INFERENCE": "true"}
    with serve_process(models, env) as url:
        feed(url, {"Authorization": f"Bearer {token}"})
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and "401" not in m.text and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        assert page.goto(f"{url}/ui/models/digits-drift").status == 401
        page.fill("input[name=token]", token)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url == f"{url}/ui/models/digits-drift"
        assert page.inner_text(f"{section('digits-drift', '1')} .verdict") == "drift"
        (cookie,) = [c for c in browser.cookies(f"{url}/ui") if c["name"] == "candor_ui"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != token
        page.close()
    assert problems == []
