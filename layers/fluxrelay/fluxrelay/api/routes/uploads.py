"""Uploads: WaveSpeed-compatible upload tickets, multipart uploads, img2img by upload."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import base_url, http_event, require_owner, take_quota
from fluxrelay.api.bodies import parse_multipart_file, raw_body
from fluxrelay.api.envelope import envelope
from fluxrelay.api.idempotency import IdempotentOutcome
from fluxrelay.models.uploads import (
    BinaryUploadEnvelope,
    Img2ImgUploadRequest,
    Img2ImgUploadTicket,
    Img2ImgUploadTicketEnvelope,
    UploadTicketEnvelope,
    UploadTicketRequest,
)
from fluxrelay.observability import logger

router = Router()


class TicketOutcome(IdempotentOutcome):
    """What an `Idempotency-Key` stores for an img2img upload ticket."""

    ticket: Img2ImgUploadTicket


@router.post(
    "/api/v3/media/uploads",
    summary="Get an upload URL for an image",
    description="Announce a file; PUT it to `upload.url` with exactly `upload.headers`, then use "
    "`download_url` as `image` or `mask_image`.",
    tags=[openapi.UPLOADS],
    responses=openapi.responses(UploadTicketEnvelope, 400, 401, 415),
)
def create_media_upload(request: Annotated[UploadTicketRequest, Body()]) -> Response[UploadTicketEnvelope]:
    owner = require_owner(http_event(router))
    return envelope(composition.container().uploads.ticket(owner, request))


@router.post(
    "/api/v3/media/upload/binary",
    summary="Upload an image in the request",
    description="Multipart form with the field `file`; answers its `download_url`.",
    tags=[openapi.UPLOADS],
    responses=openapi.responses(BinaryUploadEnvelope, 400, 401),
)
def upload_media_binary() -> Response[BinaryUploadEnvelope]:
    event = http_event(router)
    owner = require_owner(event)
    filename, data = parse_multipart_file(raw_body(event), event.headers.get("content-type", ""))
    return envelope(composition.container().uploads.binary(owner, filename, data))


@router.post(
    "/api/v3/img2img/uploads",
    summary="Start img2img from an upload",
    description="Validates the generation parameters now and answers a PUT URL; the upload itself "
    "starts the job.",
    tags=[openapi.UPLOADS],
    responses=openapi.responses(Img2ImgUploadTicketEnvelope, 400, 401, 409, 415, 422, 429),
)
def create_img2img_upload(
    request: Annotated[Img2ImgUploadRequest, Body()],
    webhook: Annotated[str | None, Query(description="https URL to receive the signed webhook")] = None,
    idempotency_key: openapi.IdempotencyKey = None,
) -> Response[Img2ImgUploadTicketEnvelope]:
    event = http_event(router)
    owner = require_owner(event)
    c = composition.container()

    def work() -> TicketOutcome:
        take_quota(event, c.limiter, c.settings, request.num_images)
        ticket = c.uploads.img2img_ticket(
            owner, request, webhook_url=webhook, result_base_url=base_url(event, c.settings)
        )
        return TicketOutcome(ticket=ticket)

    # `Idempotency-Key` as on submit: a retry gets the same job (and a PUT URL for it).
    payload = {"body": request.model_dump(mode="json"), "webhook": webhook}
    outcome, headers = c.idempotency.once_per_key(
        event.headers, router.lambda_context, owner, "img2img/uploads", payload, work, TicketOutcome
    )
    logger.set_correlation_id(outcome.ticket.id)
    return envelope(outcome.ticket, headers=headers)
