"""Outputs: copy the upstream outputs into our bucket, checking each is the image we asked for."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass

from fluxrelay.domain import images
from fluxrelay.domain.errors import OutputUnavailableError
from fluxrelay.domain.jobs import JobError, JobItem, JobStatus, OutputItem
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import OutputSource, OutputStore
from fluxrelay.models.tasks import JobStatusOutput
from fluxrelay.observability import logger
from fluxrelay.settings import CancelledOutputs, NsfwPolicy, Settings


def output_key(job_id: str, index: int, fmt: str) -> str:
    return f"outputs/{job_id}/{index}.{images.EXTENSIONS[fmt]}"


@dataclass
class OutputService:
    lifecycle: JobLifecycle
    outputs: OutputStore
    sources: OutputSource
    settings: Settings

    def store_outputs(self, job_id: str) -> JobStatusOutput:
        job = self.lifecycle.load(job_id)
        if job.status is JobStatus.CANCELLED and self.settings.cancelled_outputs is CancelledOutputs.KEEP:
            return self._keep_late_outputs(job)
        if job.status.terminal:
            return JobStatusOutput(job_id=job_id, status=job.status.value)
        try:
            stored, withheld = self._copy_all(job)
        except OutputUnavailableError as exc:
            failed = self.lifecycle.fail(job_id, JobError(type="output_unavailable", message=exc.message))
            return JobStatusOutput(job_id=job_id, status=failed.status.value)
        done = self.lifecycle.finish(job_id, JobStatus.COMPLETED, outputs=stored, withheld_outputs=withheld)
        return JobStatusOutput(job_id=job_id, status=done.status.value)

    def _keep_late_outputs(self, job: JobItem) -> JobStatusOutput:
        """The images of a job cancelled while it ran upstream, kept by the operator's choice:
        stored on the job, which stays cancelled."""
        if job.upstream_outputs and not job.outputs:
            try:
                # The NSFW policy holds here too; only the count of withheld outputs is not kept.
                self.lifecycle.keep_outputs(job.job_id, self._copy_all(job)[0])
            except OutputUnavailableError as exc:
                logger.info("the images of a cancelled job could not be kept", extra={"reason": exc.message})
        return JobStatusOutput(job_id=job.job_id, status=job.status.value)

    def _copy_all(self, job: JobItem) -> tuple[list[OutputItem], int]:
        """The outputs stored under the NSFW policy, and how many flagged ones it withheld."""
        if not job.upstream_outputs:
            raise OutputUnavailableError("the upstream reported completion but returned no outputs")
        stored: list[OutputItem] = []
        withheld = 0
        for index, source in enumerate(job.upstream_outputs):
            nsfw = job.nsfw[index] if index < len(job.nsfw) else False
            if nsfw and self.settings.nsfw_policy is NsfwPolicy.WITHHOLD:
                withheld += 1  # never fetched, so never in our bucket
                continue
            stored.append(self._copy(job, index, source, nsfw))
        return stored, withheld

    def _copy(self, job: JobItem, index: int, source: str, nsfw: bool) -> OutputItem:
        label = f"output {index + 1} of {len(job.upstream_outputs)}"
        if source.startswith(("https://", "http://")):
            with self.sources.open(source) as chunks:
                return self._check_and_put(job, index, chunks, label, nsfw)
        return self._check_and_put(job, index, iter([_decode_base64(source, label)]), label, nsfw)

    def _check_and_put(
        self,
        job: JobItem,
        index: int,
        chunks: Iterator[bytes],
        label: str,
        nsfw: bool,
    ) -> OutputItem:
        cap = self.settings.max_output_bytes
        head = b""
        for chunk in chunks:  # read just enough to recognise the image, then stream the rest
            head += chunk
            if len(head) >= images.HEAD_BYTES:
                break
        try:
            info = images.sniff(head)
        except images.NotAnImageError as exc:
            raise OutputUnavailableError(f"{label} is not a JPEG, PNG or WebP image") from exc
        # A paid output is kept as it is: its pixel size may differ from the request (WaveSpeed
        # may round to multiples of 16, img2img may follow the input image) and its format from
        # the one asked for. Its real format, width and height are recorded. Only a non-image,
        # an oversized or an unreadable output fails the job.

        def capped() -> Iterator[bytes]:
            total = len(head)
            yield head
            for chunk in chunks:
                total += len(chunk)
                if total > cap:
                    raise OutputUnavailableError(f"{label} is larger than the {cap} byte limit")
                yield chunk

        key = output_key(job.job_id, index, info.format)
        body: Iterator[bytes] = capped()
        if nsfw and self.settings.nsfw_policy is NsfwPolicy.BLUR:
            # Obscured before the first byte is stored: the bucket never holds the original.
            body = iter([images.obscure(b"".join(body), info.format)])
        size = self.outputs.put_stream(key, body, info.content_type)
        return OutputItem(
            key=key,
            content_type=info.content_type,
            size=size,
            width=info.width,
            height=info.height,
            nsfw=nsfw,
        )


def _decode_base64(value: str, label: str) -> bytes:
    data = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OutputUnavailableError(f"{label} is neither a URL nor valid base64") from exc
