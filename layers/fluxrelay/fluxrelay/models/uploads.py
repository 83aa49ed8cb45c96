"""Upload and img2img-by-upload wire models (the generation parameters without `image`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from fluxrelay.models.wire import (
    ALLOWED_UPLOAD_CONTENT_TYPES,
    MAX_UPLOAD_BYTES,
    Envelope,
    GenerationRequest,
    PredictionUrls,
    UploadSpec,
)

# Stands in for the not-yet-uploaded image while the parameters are validated, so rules that
# need `image` (mask_image) hold; never stored, never fetched.
_PENDING_IMAGE = "https://pending-upload.invalid/image"


def _rule_error(rule: str) -> PydanticCustomError:
    # Same error type as fluxrelay.models.wire' rules, so describe_validation_error prints
    # "<field> <rule>" like every other 400.
    return PydanticCustomError("fluxrelay_rule", "{rule}", {"rule": rule})


class Img2ImgParameters(GenerationRequest):
    """The submit body minus `image` (the image is the upload): img2img-by-upload and sidecars."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("image", mode="before")
    @classmethod
    def _no_image(cls, value: Any) -> Any:
        if value is not None:
            raise _rule_error("must not be given: the uploaded file is the image")
        return value

    @field_validator("mask_image")
    @classmethod
    def _mask_needs_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Overrides GenerationRequest's rule of the same name: the image comes with the upload.
        return value

    def to_generation_request(self, context: Mapping[str, object] | None = None) -> GenerationRequest:
        """The plain submit body (image still None), validated again by GenerationRequest."""
        data = self.model_dump(mode="json", include=set(GenerationRequest.model_fields))
        validated = GenerationRequest.model_validate({**data, "image": _PENDING_IMAGE}, context=context)
        return validated.model_copy(update={"image": None})


UploadContentType = Literal["image/jpeg", "image/png", "image/webp"]


class Img2ImgUploadRequest(Img2ImgParameters):
    """Body of `POST /api/v3/img2img/uploads`: the generation parameters, plus what will be PUT.

    `content_length` is the byte size of the file (`size` already means the output "W*H"); when
    given, the presigned PUT only accepts exactly that many bytes.
    """

    content_type: Annotated[UploadContentType, Field(description="Type of the file you will PUT.")] = (
        "image/jpeg"
    )
    content_length: Annotated[int | None, Field(ge=1, le=MAX_UPLOAD_BYTES)] = Field(
        None, description="Exact byte size of the file you will PUT (enforced by the signature)."
    )

    @field_validator("content_type", mode="wrap")
    @classmethod
    def _content_type_rule(cls, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise _rule_error("must be one of " + ", ".join(ALLOWED_UPLOAD_CONTENT_TYPES)) from None

    @field_validator("content_length", mode="wrap")
    @classmethod
    def _content_length_rule(cls, value: Any, handler: Any) -> Any:
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise _rule_error(f"must be a whole number of bytes from 1 to {MAX_UPLOAD_BYTES}")
        try:
            return handler(value)
        except ValidationError:
            raise _rule_error(f"must be a whole number of bytes from 1 to {MAX_UPLOAD_BYTES}") from None


class Img2ImgUploadTicket(BaseModel):
    """Answer of `POST /api/v3/img2img/uploads`: the job, and where to PUT its input."""

    id: str
    urls: PredictionUrls
    status: Literal["created"] = "created"
    upload: UploadSpec


class Img2ImgUploadTicketEnvelope(Envelope[Img2ImgUploadTicket]):
    pass
