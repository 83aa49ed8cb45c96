"""The API edge, in-process: what a hostile or mistaken body gets from the API function (before
anything is looked up, recorded or paid for), the log context of every invocation, and how long
the authorizer keeps serving a revoked key."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fluxrelay import composition
from fluxrelay.apikeys import ApiKeyItem, hash_key, key_id
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.observability import logger
from fluxrelay.settings import Settings
from tests.fakes.memory import MemoryJobStore, RecordingWorkflow
from tests.support.functions import Ctx, load_handler
from tests.support.stack import function_log_lines

ROOT = Path(__file__).resolve().parents[2]
SUBMIT_EVENT = json.loads((ROOT / "events" / "api_submit.json").read_text(encoding="utf-8"))
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    module = load_handler("api")

    def no_container() -> Any:
        raise AssertionError("a refused body reached the services (jobs, quota, upstream)")

    monkeypatch.setattr(composition, "container", no_container)
    return module


def submit(api: ModuleType, body: str, content_type: str | None = "application/json") -> tuple[int, str]:
    event = copy.deepcopy(SUBMIT_EVENT)
    event["body"] = body
    event["headers"].pop("content-type")
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    out = api.handler(event, Ctx())
    answer = json.loads(out["body"])
    assert answer["code"] == out["statusCode"]
    assert answer["data"] is None
    return out["statusCode"], answer["message"]


DEEP = 100_000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param('[{"prompt": "a lighthouse"}]', "the body must be a single JSON object", id="array"),
        pytest.param('"a lighthouse"', "the body must be a single JSON object", id="string"),
        pytest.param("[" * DEEP + "]" * DEEP, "the body is nested too deeply", id="deep-top"),
        pytest.param(
            '{"prompt": ' + "[" * DEEP + "]" * DEEP + "}", "the body is nested too deeply", id="deep-field"
        ),
        pytest.param(
            '{"prompt": ' + "[" * 40 + "]" * 40 + "}", "the body is nested too deeply", id="deep-40"
        ),
        pytest.param('{"prompt": "a\\u0000b"}', "prompt must not contain control characters", id="nul"),
        pytest.param('{"prompt": "a\\rb"}', "prompt must not contain control characters", id="cr"),
        pytest.param(
            '{"prompt": "a", "output_format": "png\\u001b"}',
            "output_format must not contain control characters",
            id="esc",
        ),
        pytest.param(
            '{"prompt": "a", "loras": [{"path": "a/b\\u0007", "scale": 1}]}',
            "loras[0].path must not contain control characters",
            id="bell-nested",
        ),
        pytest.param(
            '{"prompt": "cheap", "num_images": 1, "num_images": 4}',
            "the key 'num_images' appears twice",
            id="duplicate",
        ),
        pytest.param(
            '{"prompt": "a", "loras": [{"path": "a/b", "scale": 1, "scale": 2}]}',
            "the key 'scale' appears twice",
            id="duplicate-nested",
        ),
        pytest.param('{"prompt":"x"', "the body is not valid JSON", id="truncated"),
        pytest.param("prompt=x", "the body is not valid JSON", id="form-as-json"),
        pytest.param('{"prompt": "a", "strength": NaN}', "the body is not valid JSON", id="nan"),
    ],
)
def test_a_hostile_json_body_is_a_400_that_says_what_is_wrong(
    api: ModuleType, body: str, message: str
) -> None:
    status, said = submit(api, body)

    assert status == 400
    assert said.startswith(message), said


def test_tab_and_newline_are_allowed_in_a_prompt(api: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[bool] = []

    def services() -> Any:
        # Past the body checks, the route asks for the services: the body was accepted.
        reached.append(True)
        raise LookupError("no services in this test")

    monkeypatch.setattr(composition, "container", services)

    submit(api, '{"prompt": "two\\tcolumns\\nand lines"}')

    assert reached


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
def test_a_body_not_sent_as_json_is_a_415_with_the_hint(api: ModuleType, content_type: str) -> None:
    # curl -d sends form encoding unless told otherwise; the body itself would be fine JSON.
    status, said = submit(api, '{"prompt": "x"}', content_type)

    assert status == 415
    assert "Content-Type: application/json" in said


@pytest.mark.parametrize("route", ["/api/v3/media/uploads", "/api/v3/img2img/uploads"])
def test_every_json_route_reads_its_body_the_same_way(api: ModuleType, route: str) -> None:
    event = copy.deepcopy(SUBMIT_EVENT)
    event["rawPath"] = event["requestContext"]["http"]["path"] = route
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST {route}"
    for body, status, message in (
        ('[{"prompt": "x"}]', 400, "the body must be a single JSON object"),
        ('{"a": 1, "a": 2}', 400, "the key 'a' appears twice"),
        ("[" * DEEP, 400, "the body is nested too deeply"),
    ):
        event["body"] = body
        out = api.handler(event, Ctx())
        assert out["statusCode"] == status
        assert json.loads(out["body"])["message"].startswith(message)
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"
    event["body"] = "filename=a.png"
    assert api.handler(event, Ctx())["statusCode"] == 415


# --------------------------------------------------------------------------- log context
def test_a_401_is_not_logged_under_the_previous_callers_identity(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Container:
        # No jobs at all: every result lookup is a 404.
        lifecycle = JobLifecycle(store=MemoryJobStore(), generation=RecordingWorkflow(), settings=Settings())

    monkeypatch.setattr(composition, "container", Container)
    event = copy.deepcopy(SUBMIT_EVENT)
    path = "/api/v3/predictions/" + "0" * 32
    event.update(rawPath=path, routeKey=f"GET {path}", body=None)
    event["requestContext"]["http"].update(method="GET", path=path)
    with function_log_lines() as lines:
        assert api.handler(event, Ctx())["statusCode"] == 404
        first = lines()
        assert first
        assert all(line["owner"] == "alice" for line in first)

        event["requestContext"]["authorizer"] = {"lambda": {"owner": "", "auth_error": "missing"}}
        event["requestContext"]["requestId"] = "second-request"
        assert api.handler(event, Ctx())["statusCode"] == 401
        second = lines()[len(first) :]
    logger.clear_state()
    assert second
    for line in second:
        assert "owner" not in line
        assert "key_id" not in line
        assert line["correlation_id"] == "second-request"


def no_services() -> Any:
    raise LookupError("no services in this test")


@pytest.mark.parametrize("name", HANDLERS)
def test_every_handler_starts_its_invocation_with_a_clean_log_context(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    module = load_handler(name)
    monkeypatch.setattr(composition, "container", no_services)
    logger.append_keys(owner="previous-caller", key_id="k_previous")
    try:
        # Whatever the handler makes of an empty event, by then the old keys must be gone.
        with contextlib.suppress(Exception):
            module.handler({}, Ctx())
        keys = logger.get_current_keys()
    finally:
        logger.clear_state()
    assert "owner" not in keys
    assert "key_id" not in keys


# --------------------------------------------------------------------------- authorizer cache
class Keys:
    def __init__(self) -> None:
        self.active: dict[str, ApiKeyItem] = {}

    def lookup(self, key: str) -> ApiKeyItem | None:
        return self.active.get(key)


@pytest.mark.parametrize(("window", "served_after_revocation"), [("0", False), ("60", True)])
def test_a_revoked_key_works_for_at_most_the_authorizer_cache_window(
    monkeypatch: pytest.MonkeyPatch, window: str, served_after_revocation: bool
) -> None:
    monkeypatch.setenv("AUTHORIZER_CACHE_SECONDS", window)
    authorizer = load_handler("authorizer")

    class Container:
        settings = Settings()
        keys = Keys()

    keys = Container.keys
    monkeypatch.setattr(composition, "container", Container)
    key = "fr_" + "k" * 43
    keys.active[key] = ApiKeyItem(key_hash=hash_key(key), key_id=key_id(key), owner="alice")
    event = {"type": "REQUEST", "headers": {"authorization": f"Bearer {key}"}}

    assert authorizer.handler(event, Ctx())["context"]["owner"] == "alice"
    del keys.active[key]  # revoked
    owner = authorizer.handler(event, Ctx())["context"]["owner"]

    assert (owner == "alice") is served_after_revocation
