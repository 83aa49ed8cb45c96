"""Upload routes (WaveSpeed-compatible tickets, multipart uploads, img2img by upload).

A Powertools `Router`: the API function includes it with `app.include_router(router)`, so these
routes share the app's validation (`enable_validation=True`) and its error handlers (every
answer is the envelope). The authorizer never denies; `require_owner` gives the 401 envelope.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from fluxrelay.api.multipart import parse_multipart_file
from fluxrelay.composition import container
from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.http import base_url, envelope, once_per_key, require_owner, take_quota
from fluxrelay.models.uploads import Img2ImgUploadRequest, Img2ImgUploadTicket
from fluxrelay.models.wire import BinaryUpload, Envelope, UploadTicket, UploadTicketRequest
from fluxrelay.observability import logger

router = Router()


def _event() -> APIGatewayProxyEventV2:
    # The router is included in an APIGatewayHttpResolver: its events are payload 2.0.
    return cast(APIGatewayProxyEventV2, router.current_event)


def _raw_body() -> bytes:
    event = _event()
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("the body is not valid base64") from None


@router.post("/api/v3/media/uploads")
def create_media_upload(request: Annotated[UploadTicketRequest, Body()]) -> Response[Envelope[UploadTicket]]:
    owner = require_owner(_event())
    return envelope(container().uploads.ticket(owner, request))


@router.post("/api/v3/media/upload/binary")
def upload_media_binary() -> Response[Envelope[BinaryUpload]]:
    owner = require_owner(_event())
    content_type = _event().headers.get("content-type", "")
    filename, data = parse_multipart_file(_raw_body(), content_type)
    return envelope(container().uploads.binary(owner, filename, data))


@router.post("/api/v3/img2img/uploads")
def create_img2img_upload(
    request: Annotated[Img2ImgUploadRequest, Body()],
    webhook: Annotated[str | None, Query(description="https URL to receive the signed webhook")] = None,
) -> Response[Envelope[Img2ImgUploadTicket]]:
    event = _event()
    owner = require_owner(event)

    def work() -> dict[str, Any]:
        c = container()
        take_quota(event, c.limiter, c.settings, request.num_images)
        ticket = c.uploads.img2img_ticket(
            owner, request, webhook_url=webhook, result_base_url=base_url(event)
        )
        return {"ticket": ticket.model_dump(mode="json")}

    # `Idempotency-Key` as on submit: a retry gets the same job (and a PUT URL for it).
    payload = {"body": request.model_dump(mode="json"), "webhook": webhook}
    outcome, headers = once_per_key(event, owner, "img2img/uploads", payload, work)
    ticket = Img2ImgUploadTicket.model_validate(outcome["ticket"])
    logger.set_correlation_id(ticket.id)
    return envelope(ticket, headers=headers)
