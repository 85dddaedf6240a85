"""GET /openapi.json: a valid document, built from the validator's own constants,
naming every route of the app and every error code the source can answer with."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from quart_trio import QuartTrio

from tippen_rt.config import Settings
from tippen_rt.events import Limits, validate_batch
from tippen_rt.http._openapi import ERROR_CODES, OPENAPI_PATH, build_openapi

from ..conftest import make_batch, now_ms

SRC = Path(__file__).resolve().parents[2] / "src" / "tippen_rt"
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
#: Methods Quart adds to every route by itself.
_IMPLICIT = {"HEAD", "OPTIONS"}


async def _served(client: Any) -> dict[str, Any]:
    response = await client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    doc: dict[str, Any] = orjson.loads(await response.get_data())
    return doc


async def test_the_served_document_is_valid_openapi_3_1(client: Any, settings: Settings) -> None:
    doc = await _served(client)
    validate(doc)  # raises on any error
    assert doc["openapi"] == "3.1.0"
    assert doc == orjson.loads(orjson.dumps(build_openapi(settings, Limits())))


def _routes(app: QuartTrio) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        methods = set(rule.methods or ()) - _IMPLICIT
        if rule.endpoint == "ingest.preflight":
            methods = {"OPTIONS"}
        found |= {(path, m.lower()) for m in methods}
    return found


async def test_every_route_of_the_app_is_in_the_document_and_nothing_else(
    app: QuartTrio, client: Any
) -> None:
    doc = await _served(client)
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    routes = _routes(app)
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "the OpenAPI document names routes that do not exist"


def _codes_in_source() -> set[str]:
    """Every error code a BadInput is made with, and the protocol edge's and HTTP
    error handler's tables."""
    codes: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "BadInput"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                codes.add(node.args[0].value)
            # {status: ("code", "message")} tables
            if isinstance(node, ast.Dict):
                for value in node.values:
                    if (
                        isinstance(value, ast.Tuple)
                        and len(value.elts) == 2
                        and all(isinstance(e, ast.Constant) for e in value.elts)
                        and isinstance(value.elts[0], ast.Constant)
                        and isinstance(value.elts[0].value, str)
                        and re.fullmatch(r"[a-z0-9_]+", value.elts[0].value)
                        and all(
                            isinstance(k, ast.Constant) and isinstance(k.value, int)
                            for k in node.keys
                        )
                    ):
                        codes.add(value.elts[0].value)
    return codes


def test_every_error_code_in_the_source_is_documented_and_no_other() -> None:
    in_source = _codes_in_source()
    assert len(in_source) > 25  # the scan sees the codes (events, ingest, admin, protocol)
    assert in_source - set(ERROR_CODES) == set(), "undocumented error codes"
    assert set(ERROR_CODES) - in_source == set(), "documented codes nothing raises"


def test_limits_come_from_the_settings_and_the_validator() -> None:
    limits = Limits(max_events=7)
    doc = build_openapi(Settings(max_body_bytes=1000), limits)
    schemas = doc["components"]["schemas"]
    assert schemas["Batch"]["properties"]["events"]["maxItems"] == 7
    assert schemas["ClickEvent"]["properties"]["element"]["maxLength"] == limits.element_chars
    assert "1000 bytes" in schemas["Batch"]["description"]
    assert set(schemas["Batch"]["properties"]["subscriptionTier"]["enum"]) == {
        "free_trial",
        "paid",
        "enterprise",
    }


def _batch_validator() -> Draft202012Validator:
    doc = build_openapi(Settings(), Limits())
    return Draft202012Validator({"$ref": "#/components/schemas/Batch", **doc})


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"userEmail": None, "batchId": "b-1", "sentAt": None, "userHash": None},
        {"events": [{"type": "heartbeat", "timestamp": 1, "input": 3, "focused": True}]},
        {"events": [{"type": "custom", "timestamp": 1, "name": "x", "data": {"a": [1]}}]},
    ],
)
def test_batches_the_validator_takes_match_the_schema(change: dict[str, Any]) -> None:
    from tippen_rt.tenants import Tenant

    tenant = Tenant(id=1, name="acme", api_key="client_x", admin_token_hash="h")
    batch = {**make_batch(tenant), **change}
    validate_batch(batch, now_ms() if "events" not in change else 1)
    assert list(_batch_validator().iter_errors(batch)) == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"userId": "ann\u202e"}, "invalid_field"),
        ({"userId": "   "}, "invalid_field"),
        ({"subscriptionTier": "gold"}, "invalid_field"),
        ({"events": [{"type": "nope", "timestamp": 1}]}, "unknown_event_type"),
        ({"events": [{"type": "click", "timestamp": 1}]}, "missing_field"),
        ({"events": [{"type": "visibility", "timestamp": 1, "state": "gone"}]}, "invalid_field"),
        ({"events": [{"type": "route", "timestamp": 1, "route": "x" * 2049}]}, "field_too_long"),
        ({"events": [{"type": "heartbeat", "timestamp": 1, "input": -1}]}, "invalid_field"),
        ({"events": [{"type": "route", "route": "/"}] * 51}, "too_many_events"),
    ],
)
def test_batches_the_validator_refuses_the_schema_refuses_too(
    change: dict[str, Any], code: str
) -> None:
    from tippen_rt.events import BadInput
    from tippen_rt.tenants import Tenant

    tenant = Tenant(id=1, name="acme", api_key="client_x", admin_token_hash="h")
    batch = {**make_batch(tenant), **change}
    with pytest.raises(BadInput) as refused:
        validate_batch(batch, 1)
    assert refused.value.code == code
    assert list(_batch_validator().iter_errors(batch)) != []
