"""Schemathesis over the OpenAPI document of a real `candor serve`: every operation, bounded
examples, every default check (no 5xx, documented statuses, content types, headers, schemas,
schema-invalid data rejected). ``positive_data_acceptance`` (schema-valid data is not refused) runs
on every operation but the inference ones: their document is shared by every model, so a
schema-valid body can still carry the wrong tensor shape for this one and get a 400 naming the
field (that is the contract, not a failure). It found feedback refusing the label 5159.0."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from e2e_processes import serve_process
from hypothesis import HealthCheck, Phase, settings
from model_copies import copy_version
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.e2e
TOKEN = "fuzz-token"
MAX_EXAMPLES = 15
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CASES = itertools.count()


@pytest.fixture(scope="module")
def fuzzed_server(digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    models: Path = tmp_path_factory.mktemp("fuzz") / "models"
    copy_version(digits_artifact.models_dir, models, "digits-cnn", "1", "1")
    with serve_process(
        models,
        {
            "CANDOR_AUTH_TOKEN": TOKEN,
            "CANDOR_MAX_BODY_BYTES": "65536",
            "CANDOR_STATE_DIR": str(tmp_path_factory.mktemp("fuzz-state")),
        },
    ) as url:
        yield url


def service_document() -> dict:
    """The OpenAPI document the fuzzed server publishes (same settings; no model loaded)."""
    from service.app import create_app
    from service.settings import Settings

    return create_app(Settings(models_dir=Path("/nonexistent"), auth_token=TOKEN)).openapi()


schema = schemathesis.openapi.from_dict(service_document())
INFERENCE = r"(:predict|/infer)$"  # bodies whose valid shape depends on the model, not the document
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.include(path_regex=INFERENCE).parametrize()
@FUZZ
def test_inference_operations_conform_to_the_document(fuzzed_server: str, case) -> None:
    aim_at_the_loaded_model(case)
    httpx.post(f"{fuzzed_server}/v2/repository/models/digits-cnn/load", headers=AUTH)  # after unloads
    case.call_and_validate(base_url=fuzzed_server, headers=AUTH, excluded_checks=[positive_data_acceptance])


@schema.exclude(path_regex=INFERENCE).parametrize()
@FUZZ
def test_every_other_operation_conforms_and_accepts_what_the_document_allows(fuzzed_server: str, case) -> None:
    aim_at_the_loaded_model(case)
    httpx.post(f"{fuzzed_server}/v2/repository/models/digits-cnn/load", headers=AUTH)  # after unloads
    case.call_and_validate(base_url=fuzzed_server, headers=AUTH)


def aim_at_the_loaded_model(case) -> None:
    """Unless the path itself is the negative part of a case, three cases in four name the loaded
    model, so bodies reach the parsers instead of nearly all answering 404."""
    params = case.path_parameters or {}
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return
    if next(CASES) % 4 and "model_name" in params:
        params["model_name"] = "digits-cnn"
        if "model_version" in params:
            params["model_version"] = "1"
