"""The OpenAPI document a developer reads (`GET /openapi.json`, Swagger at `/swagger`): the bearer
scheme, tags and summaries in words, every error answer in the envelope, the headers the API
reads, schema names without Python type names, and exactly the template's routes."""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fluxrelay.api.routes import ROUTERS
from tests.support.functions import Ctx, load_handler
from tests.unit.test_template import ROUTES

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "events" / "api_submit.json").read_text(encoding="utf-8"))
PUBLIC = {("GET", "/health"), ("POST", "/api/v3/upstream/webhooks/{id}")}
TAGS = {"Predictions", "History", "Uploads", "Webhooks", "Service"}


@pytest.fixture(scope="module")
def api() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        yield load_handler("api")


def get(api: ModuleType, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    event.update(routeKey=f"GET {path}", rawPath=path, body=None, queryStringParameters=query)
    event["requestContext"]["http"].update(method="GET", path=path)
    return dict(api.handler(event, Ctx()))


@pytest.fixture(scope="module")
def document(api: ModuleType) -> dict[str, Any]:
    answer = get(api, "/openapi.json")
    assert answer["statusCode"] == 200
    return dict(json.loads(answer["body"]))


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{id}", path)): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_the_document_has_exactly_the_routes_the_template_routes_through_the_authorizer(
    document: dict[str, Any],
) -> None:
    # A route the template lacks would reach the function through the catch-all, unauthorized.
    documented = set(operations(document))
    templated = {route for route in ROUTES if route[1] not in ("$default", "/openapi.json")}
    assert documented == templated
    for route in documented:
        assert ROUTES[route] is (route not in PUBLIC), route


def test_swaggers_authorize_button_takes_an_api_key_as_a_bearer_token(document: dict[str, Any]) -> None:
    ((name, scheme),) = document["components"]["securitySchemes"].items()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{name: []}]
    for route, operation in operations(document).items():
        assert operation.get("security") == ([{}] if route in PUBLIC else None), route


def test_every_operation_has_a_tag_and_a_summary_in_words(document: dict[str, Any]) -> None:
    assert {tag["name"] for tag in document["tags"]} == TAGS
    for (method, _), operation in operations(document).items():
        (tag,) = operation["tags"]
        assert tag in TAGS
        summary = operation["summary"]
        assert summary[0].isupper(), summary
        assert method not in summary
        assert "/" not in summary


def test_every_error_answer_is_the_envelope_and_no_generic_422_is_promised(document: dict[str, Any]) -> None:
    for route, operation in operations(document).items():
        answers = operation["responses"]
        assert "200" in answers, route
        if route not in PUBLIC:
            assert "401" in answers, route
        if operation.get("requestBody") or any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in answers, route
        if operation.get("requestBody") and route != ("POST", "/api/v3/media/upload/binary"):
            assert "415" in answers, route
        for status, answer in answers.items():
            if status != "200":
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (route, status)
        if "422" in answers:  # only where an Idempotency-Key can be reused with another body
            assert "Idempotency-Key" in answers["422"]["description"]
    assert "HTTPValidationError" not in json.dumps(document)


def test_the_headers_the_api_reads_are_declared(document: dict[str, Any]) -> None:
    ops = operations(document)

    def headers(route: tuple[str, str]) -> set[str]:
        return {p["name"].lower() for p in ops[route].get("parameters", []) if p["in"] == "header"}

    assert headers(("POST", "/api/v3/wavespeed-ai/flux-schnell-lora")) == {"idempotency-key", "cancel-after"}
    assert headers(("POST", "/api/v3/img2img/uploads")) == {"idempotency-key"}
    assert {p["name"] for p in ops[("GET", "/api/v3/predictions")]["parameters"]} == {
        "limit",
        "cursor",
        "status",
        "created_after",
        "created_before",
    }


def test_schema_names_are_words_not_python_types(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])
    assert {"PredictionEnvelope", "ErrorEnvelope", "PredictionPageEnvelope"} <= names
    for name in names:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name


def test_swagger_shows_the_same_document(api: ModuleType, document: dict[str, Any]) -> None:
    page = get(api, "/swagger")
    spec = get(api, "/swagger", {"format": "json"})

    assert page["statusCode"] == 200
    assert "text/html" in page["headers"]["Content-Type"]
    assert json.loads(spec["body"]) == document


def test_each_route_is_reached_through_the_paths_its_router_is_loaded_for() -> None:
    # The API imports a router at the first request for one of its paths: a route outside them
    # would answer 404 until another request happened to load its module.
    served = set()
    for name, patterns in ROUTERS.items():
        router = importlib.import_module(f"fluxrelay.api.routes.{name}").router
        for rule, methods, *_ in router._routes:
            path = re.sub(r"<[^>]+>", "{id}", rule)
            assert any(fnmatchcase(path.replace("{id}", "job-1"), p) for p in patterns), (name, rule)
            served |= {(method, path) for method in methods}
    app_routes = {("GET", "/health"), ("GET", "/openapi.json"), ("ANY", "$default")}
    assert served == set(ROUTES) - app_routes
