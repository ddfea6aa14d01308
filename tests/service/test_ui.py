"""GET /ui: every model version with the status API's own figures, escaped, locked down, behind
the token when inference is (the browser test is tests/e2e/test_ui_browser.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from model_copies import edit_manifest

from service.app import create_app
from service.errors import ModelNotFound
from service.settings import Settings
from service.ui.auth import COOKIE
from service.ui.cache import PageCache
from training.data import load_digits

HOSTILE_CLASS = '<script>alert("class")</script>'
N = 120


@pytest.fixture(scope="module")
def models(digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits-cnn, and digits-hostile whose class 3 is named like a script."""
    root = tmp_path_factory.mktemp("ui-models")
    shutil.copytree(digits_artifact.models_dir / "digits-cnn", root / "digits-cnn")
    shutil.copytree(digits_artifact.models_dir / "digits-cnn", root / "digits-hostile")

    def rename(m: dict) -> None:
        m.update(name="digits-hostile")
        m["classes"][3] = HOSTILE_CLASS

    edit_manifest(root / "digits-hostile" / "1", rename)
    return root


def fed_client(models: Path, state: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(models_dir=models, drift_min_labels=50, state_dir=state, **settings)))


@pytest.fixture(scope="module")
def client(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app that served N digits to each model and got true labels for digits-cnn only."""
    digits = load_digits()
    images, truth = digits.test_x[:N, 0].tolist(), digits.test_y[:N]
    with fed_client(models, tmp_path_factory.mktemp("ui-state")) as client:
        ids = {}
        for model in ("digits-cnn", "digits-hostile"):
            answer = client.post(f"/v1/models/{model}:predict", json={"instances": images})
            ids[model] = [p["prediction_id"] for p in answer.json()["predictions"]]
        labels = [{"prediction_id": pid, "label": int(y)} for pid, y in zip(ids["digits-cnn"], truth, strict=True)]
        assert client.post("/v1/feedback", json={"labels": labels}).json()["accepted"] == N
        yield client


def figures(page: str, model: str) -> dict[str, object]:
    """data-key -> data-value (JSON) of one model's section."""
    section = page.split(f'<section class="version" data-model="{model}"', 1)[1].split("</section>", 1)[0]
    pairs = re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', section)
    return {key: json.loads(value.replace("&quot;", '"')) for key, value in pairs}


def dotted(status: dict, key: str) -> object:
    value: object = status
    for part in key.split("."):
        assert isinstance(value, dict)
        value = value[part]
    return value


def test_page_shows_every_model_with_the_status_api_figures(client: TestClient) -> None:
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for model in ("digits-cnn", "digits-hostile"):
        status = client.get(f"/v1/models/{model}/calibration").json()
        shown = figures(page.text, model)
        assert len(shown) >= 15
        for key, value in shown.items():
            expected = dotted(status, key)
            assert value == (list(expected) if isinstance(expected, tuple) else expected), key
    assert figures(page.text, "digits-cnn")["window.labels"] == N
    assert {"label_free.class_mix.psi", "label_free.class_mix_shift"} <= figures(page.text, "digits-cnn").keys()
    assert figures(page.text, "digits-hostile")["drift.verdict"] == "insufficient_data"


def test_diagrams_have_one_group_per_bin(client: TestClient) -> None:
    page = client.get("/ui/models/digits-cnn").text
    status = client.get("/v1/models/digits-cnn/calibration").json()
    reliability = page.split('<svg class="reliability"', 1)[1].split("</svg>", 1)[0]
    assert len(re.findall(r'<g class="bin[ "]', reliability)) == len(status["reliability"]) == 15
    counts = [int(c) for c in re.findall(r'data-count="(\d+)"', reliability)]
    assert counts == [b["count"] for b in status["reliability"]]
    histogram = page.split('<svg class="histogram"', 1)[1].split("</svg>", 1)[0]
    assert sum(int(c) for c in re.findall(r'data-count="(\d+)"', histogram)) == status["label_free"]["predictions"]
    assert 'data-model="digits-hostile"' not in page  # one model only


def test_hostile_names_are_escaped_and_nothing_runs(client: TestClient) -> None:
    page = client.get("/ui").text
    assert "<script" not in page.lower() and HOSTILE_CLASS not in page
    assert "&lt;script&gt;alert(&quot;class&quot;)&lt;/script&gt;" in page
    missing = client.get("/ui/models/" + quote('<img src=x onerror="alert(1)">'))
    assert missing.status_code == 404 and "<img" not in missing.text
    assert "unknown model &#x27;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#x27;" in missing.text


def test_strict_csp_admits_exactly_the_inline_stylesheet(client: TestClient) -> None:
    response = client.get("/ui")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    (css,) = re.findall(r"<style>(.*?)</style>", response.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp
    assert not re.search(r"\sstyle=|\son[a-z]+=|https?://(?!www\.w3\.org/2000/svg)", response.text)
    assert response.headers["cache-control"] == "no-store"
    assert '<meta http-equiv="refresh" content="30">' in response.text
    assert 'name="viewport"' in response.text


def test_recalibration_history_lists_nothing_for_an_exported_version(client: TestClient) -> None:
    page = client.get("/ui/models/digits-cnn").text
    section = page.split('<section class="recalibration"', 1)[1].split("</section>", 1)[0]
    assert "No loaded version of this model was written by a recalibration" in section and "<table" not in section


def test_token_prompt_then_cookie_when_inference_needs_the_token(models: Path, tmp_path: Path) -> None:
    token = "s3cret-token"
    with fed_client(models, tmp_path, auth_token=token, auth_inference=True) as client:
        prompt = client.get("/ui/models/digits-cnn")
        assert prompt.status_code == 401 and 'action="/ui/login"' in prompt.text
        assert 'data-model="digits-cnn"' not in prompt.text
        wrong = client.post("/ui/login", data={"token": "nope", "next": "/ui"}, follow_redirects=False)
        assert wrong.status_code == 401 and COOKIE not in wrong.headers.get("set-cookie", "")
        assert client.get("/ui", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        right = client.post("/ui/login", data={"token": token, "next": "/ui/models/digits-cnn"}, follow_redirects=False)
        assert right.status_code == 303 and right.headers["location"] == "/ui/models/digits-cnn"
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie and token not in cookie
        assert client.get("/ui").status_code == 200  # the client keeps the cookie
        assert client.post("/v1/models/digits-cnn:predict", json={"instances": [[[0] * 8] * 8]}).status_code == 401
        away = client.post("/ui/login", data={"token": token, "next": "//evil.example/ui"}, follow_redirects=False)
        assert away.headers["location"] == "/ui"
        client.post("/ui/logout", follow_redirects=False)
        assert client.get("/ui").status_code == 401


def test_page_is_open_when_inference_is(models: Path, tmp_path: Path) -> None:
    with fed_client(models, tmp_path, auth_token="t", ui_refresh_s=0) as client:
        page = client.get("/ui")
        assert page.status_code == 200 and "http-equiv" not in page.text and "sign out" not in page.text


def test_page_cache_renders_once_per_ttl_and_keeps_no_failure() -> None:
    clock = [0.0]
    cache = PageCache(ttl_s=1.0, clock=lambda: clock[0])
    renders: list[str | None] = []

    async def render(scope: str | None) -> str:
        renders.append(scope)
        if scope == "missing":
            raise ModelNotFound("unknown model 'missing'")
        return f"page {len(renders)}"

    async def scenario() -> list[str]:
        pages = [await cache.get(None, lambda: render(None)) for _ in range(3)]
        pages.append(await cache.get("m", lambda: render("m")))
        clock[0] = 1.5
        pages.append(await cache.get(None, lambda: render(None)))
        for _ in range(2):
            with pytest.raises(ModelNotFound):
                await cache.get("missing", lambda: render("missing"))
        return pages

    assert asyncio.run(scenario()) == ["page 1", "page 1", "page 1", "page 2", "page 3"]
    assert renders == [None, "m", None, "missing", "missing"]
