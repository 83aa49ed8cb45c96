"""What a caller is refused: a bad body (400, naming the field), a bad key (401), someone
else's job (404, the same answer as for an id that does not exist). None of these generates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.acceptance.checks import BODY, FinishedJob
from tests.acceptance.target import Target
from tests.support.stack import Api


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"size": "512*384"}, "prompt"),
        ({**BODY, "num_images": 9}, "num_images"),
        ({**BODY, "size": "huge"}, "size"),
        ({**BODY, "colour": "red"}, "colour"),
    ],
    ids=["missing-prompt", "num-images-out-of-range", "bad-size", "unknown-field"],
)
def test_a_bad_body_is_a_400_naming_the_field(alice: Api, body: dict[str, Any], named: str) -> None:
    response = alice.submit(body)

    assert response.status_code == 400, response.text
    envelope = response.json()
    assert envelope["code"] == 400
    assert named in envelope["message"]


def test_a_body_that_is_not_json_is_refused(alice: Api) -> None:
    response = alice.post(
        "/api/v3/wavespeed-ai/flux-schnell-lora",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == 400


def test_a_missing_unknown_or_revoked_key_is_a_401(target: Target, finished_job: FinishedJob) -> None:
    revoked = target.keys.create(target.new_owner("revoked"))
    target.keys.revoke(revoked)
    result_path = f"/api/v3/predictions/{finished_job.id}/result"

    for key in (None, "fr_not-a-key", revoked):
        caller = Api(target.api_url, key)
        for response in (caller.submit(BODY), caller.get(result_path)):
            assert response.status_code == 401, (key, response.text)
            assert response.json()["code"] == 401


def test_another_owners_job_is_a_404_like_an_unknown_id(bob: Api, finished_job: FinishedJob) -> None:
    unknown = "0" * len(finished_job.id)

    for path in ("/api/v3/predictions/{}/result", "/api/v3/predictions/{}"):
        theirs = bob.get(path.format(finished_job.id))
        missing = bob.get(path.format(unknown))
        assert theirs.status_code == missing.status_code == 404, theirs.text
        assert _without_id(theirs, finished_job.id) == _without_id(missing, unknown)


def _without_id(response: httpx.Response, job_id: str) -> str:
    """The answer with the asked-for id blanked, so two 404s can be compared."""
    return response.text.replace(job_id, "<id>")
