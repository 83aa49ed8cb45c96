"""Hostile input, proven: schemathesis generates requests from the OpenAPI document the local
stack serves (`GET /openapi.json`, built from the same models) and sends them with a valid API
key. Whatever it sends: no 5xx, and every answer of a routed operation is the envelope
`{code, message, data}` with `code` equal to the HTTP status, with a status and a body the
document declares for that operation.

Valid bodies create real jobs on the stand-in (that is fine). Host names in generated webhook
URLs are never looked up: the SSRF guard's resolver is replaced by one that finds nothing, so
the run stays off the network.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from fluxrelay.adapters.urlguard import rules as urlguard
from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def offline_resolver() -> Iterator[None]:
    def resolve(host: str) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: not looked up in tests")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(urlguard, "system_resolver", resolve)
        yield


@pytest.fixture(scope="module")
def api_schema(stack: LocalStack, alice: Api, offline_resolver: None) -> Any:
    return schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json", timeout=30)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"^/(swagger|openapi\.json)")


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25")),
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_every_answer_is_the_envelope(case: Any, stack: LocalStack, alice: Api) -> None:
    response = case.call(base_url=stack.api_url, headers={"Authorization": f"Bearer {alice.key}"}, timeout=60)

    sent = f"query={case.query!r} headers={case.headers!r} body={case.body!r}"[:600]
    where = f"{case.method} {case.formatted_path} {sent} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if case.method.upper() != case.operation.method.upper():
        # A method the API does not route (schemathesis probes e.g. TRACE): API Gateway itself
        # answers `{"message": "Not Found"}` before any function runs. Only no-5xx holds here.
        assert response.status_code in (404, 405), where
        return
    body = response.json()
    assert isinstance(body, dict), where
    assert set(body) == {"code", "message", "data"}, where
    assert body["code"] == response.status_code, where
    assert isinstance(body["message"], str), where
    # The document lists every answer a route gives: its status is one of them, with that schema.
    case.validate_response(response, checks=[status_code_conformance, response_schema_conformance])
