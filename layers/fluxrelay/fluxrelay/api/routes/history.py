"""History routes: WaveSpeed's list call (`POST /api/v3/predictions`, page and total) and the
cursor listing (`GET /api/v3/predictions`), both of the caller's own jobs only, newest first.

A bad filter is a 400 naming the field (the app's validation and error handlers).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import http_event, require_owner
from fluxrelay.api.envelope import envelope
from fluxrelay.domain.jobs import JobItem
from fluxrelay.models.history import (
    PredictionCursorPage,
    PredictionCursorPageEnvelope,
    PredictionListQuery,
    PredictionListRequest,
    PredictionPage,
    PredictionPageEnvelope,
)
from fluxrelay.models.wire import Prediction

router = Router()


def _owner() -> str:
    return require_owner(http_event(router))


def _present(jobs: list[JobItem]) -> list[Prediction]:
    # Output URLs even for jobs that asked for base64: a page of base64 images would not fit
    # in a Lambda response. The job's own result route still answers base64.
    presenter = composition.container().presenter
    return [presenter.present(job, allow_base64=False) for job in jobs]


@router.post(
    "/api/v3/predictions",
    summary="List your predictions by page",
    description="WaveSpeed's list call: `total` and one page of your predictions, newest first.",
    tags=[openapi.HISTORY],
    responses=openapi.responses(PredictionPageEnvelope, 400, 401, 415),
)
def list_predictions_by_page(
    request: Annotated[PredictionListRequest, Body()],
) -> Response[PredictionPageEnvelope]:
    total, jobs = composition.container().history.page(_owner(), request)
    return envelope(PredictionPage(page=request.page, total=total, items=_present(jobs)))


@router.get(
    "/api/v3/predictions",
    summary="List your predictions with a cursor",
    description="Your predictions, newest first; pass `next_cursor` back as `cursor` for the next page.",
    tags=[openapi.HISTORY],
    responses=openapi.responses(PredictionCursorPageEnvelope, 400, 401),
)
def list_predictions(
    query: Annotated[PredictionListQuery, Query()],
) -> Response[PredictionCursorPageEnvelope]:
    jobs, next_cursor = composition.container().history.listing(_owner(), query)
    return envelope(PredictionCursorPage(items=_present(jobs), next_cursor=next_cursor))
