"""Upload wire models: the upload tickets, the multipart upload's answer, and img2img by upload
(the generation parameters without `image`). Only the upload routes and the upload service load
them, so a submit does not build them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from fluxrelay.models.wire import (
    Envelope,
    GenerationRequest,
    PredictionUrls,
    _has_space_or_control,
    _rule,
    _violation,
    _whole_number,
)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED_UPLOAD_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp")

_FILENAME_RULE = "must be 1 to 255 characters without path separators (/ or \\) or control characters"


def _check_filename(value: str) -> str:
    # Plain spaces are common in phone file names; every other space/control character is not.
    if "/" in value or "\\" in value or value in {".", ".."} or _has_space_or_control(value.replace(" ", "")):
        raise _violation(_FILENAME_RULE)
    return value


Filename = Annotated[
    StrictStr, Field(min_length=1, max_length=255), _rule(_FILENAME_RULE), AfterValidator(_check_filename)
]
UploadSize = Annotated[
    int,
    Field(ge=1, le=MAX_UPLOAD_BYTES),
    _whole_number(f"must be a whole number of bytes from 1 to {MAX_UPLOAD_BYTES} (20 MiB)"),
]
UploadType = Literal["image/jpeg", "image/png", "image/webp"]
UploadContentType = Annotated[UploadType, _rule("must be one of " + ", ".join(ALLOWED_UPLOAD_CONTENT_TYPES))]


class UploadTicketRequest(BaseModel):
    """Body of `POST /api/v3/media/uploads`: announce a file, get a presigned PUT back."""

    model_config = ConfigDict(extra="forbid")

    filename: Filename
    size: UploadSize
    content_type: UploadContentType


class UploadSpec(BaseModel):
    """How to send the bytes: PUT to `url` with exactly `headers` and no Authorization."""

    method: Literal["PUT"] = "PUT"
    url: str
    headers: dict[str, str] = {}


class UploadTicket(BaseModel):
    download_url: str
    filename: str
    size: int
    upload: UploadSpec


class UploadTicketEnvelope(Envelope[UploadTicket]):
    pass


class BinaryUpload(BaseModel):
    """Answer of the multipart `POST /api/v3/media/upload/binary`."""

    type: Literal["image"] = "image"
    download_url: str
    filename: str
    size: int


class BinaryUploadEnvelope(Envelope[BinaryUpload]):
    pass


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


class Img2ImgUploadRequest(Img2ImgParameters):
    """Body of `POST /api/v3/img2img/uploads`: the generation parameters, plus what will be PUT.

    `content_length` is the byte size of the file (`size` already means the output "W*H"); when
    given, the presigned PUT only accepts exactly that many bytes.
    """

    content_type: Annotated[UploadType, Field(description="Type of the file you will PUT.")] = "image/jpeg"
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
