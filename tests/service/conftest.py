"""Service fixtures: an app over the session's digits artifact, driven in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def client(digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A TestClient (lifespan run) with a small body limit and instance cap to test them."""
    settings = Settings(
        models_dir=digits_artifact.models_dir,
        max_body_bytes=64 * 1024,
        max_instances=50,
        state_dir=tmp_path_factory.mktemp("client-state"),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client
