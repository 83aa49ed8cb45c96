"""The fluxrelay HTTP API as the command uses it: every failure becomes one CliError line."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

import httpx

from fluxrelay_cli.target import START_HINT, ApiTarget, CliError

SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora"
CANCEL_PATH = "/api/v3/predictions/{job_id}/cancel"
# Statuses after which a job never changes again (WaveSpeed's lifecycle plus our own ends).
TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled"})
_EXTENSIONS = {"image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp"}


class FluxRelayClient:
    """A caller of one fluxrelay stack with one API key."""

    def __init__(self, target: ApiTarget, *, timeout: float = 30.0) -> None:
        self.target = target
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=target.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {target.key}", "User-Agent": "fluxrelay-cli"},
        )
        # Presigned URLs (upload PUTs, output downloads) must not carry our Authorization header.
        self._plain = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    # --- calls ----------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any], *, webhook: str | None = None) -> dict[str, Any]:
        params = {"webhook": webhook} if webhook else None
        return dict(self.call("POST", SUBMIT_PATH, json=body, params=params))

    def prediction(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v3/predictions/{job_id}/result"))

    def predictions(self, query: dict[str, Any]) -> dict[str, Any]:
        """One page of the caller's jobs, newest first: `{items, next_cursor}`."""
        return dict(self.call("GET", "/api/v3/predictions", params=query))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel the job; its prediction. A refusal (a finished job's 409) names the job."""
        try:
            return dict(self.call("POST", CANCEL_PATH.format(job_id=job_id)))
        except CliError as exc:
            raise CliError(f"could not cancel job {job_id}: {exc}") from None

    def webhook_secret(self) -> str:
        return str(self.call("GET", "/api/v3/webhook/secret")["secret"])

    def upload(self, path: Path) -> str:
        """Upload a local image through an upload ticket; its `download_url` (for `image`/`mask_image`)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        ticket = self.call(
            "POST",
            "/api/v3/media/uploads",
            json={"filename": path.name, "size": len(data), "content_type": content_type},
        )
        upload = ticket["upload"]
        # The presigned PUT covers exactly these headers (type and length): send nothing else.
        response = self._send(
            self._plain, upload["method"], upload["url"], content=data, headers=upload["headers"]
        )
        if response.status_code >= 300:
            raise CliError(f"uploading {path} failed: storage answered HTTP {response.status_code}")
        return str(ticket["download_url"])

    def save_outputs(self, prediction: dict[str, Any], out_dir: Path) -> list[Path]:
        """Write each output (a URL, or base64 when the job asked for it) to `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        saved = []
        for index, output in enumerate(prediction.get("outputs") or []):
            if output.startswith(("http://", "https://")):
                response = self._send(self._plain, "GET", output)
                if response.status_code != 200:
                    raise CliError(f"output {index} could not be downloaded: HTTP {response.status_code}")
                data, content_type = response.content, response.headers.get("content-type", "")
            else:
                header, _, encoded = output.rpartition(",")
                data, content_type = base64.b64decode(encoded), header.removeprefix("data:").split(";")[0]
            extension = _EXTENSIONS.get(content_type.split(";")[0].strip(), "bin")
            path = out_dir / f"{prediction['id']}-{index}.{extension}"
            path.write_bytes(data)
            saved.append(path)
        return saved

    def can(self, route: str) -> bool:
        """Whether the stack serves `route` (an OpenAPI path such as `/api/v3/predictions/{job_id}`)."""
        try:
            document = self._send(self._http, "GET", "/openapi.json").json()
        except (CliError, ValueError):
            return False
        return isinstance(document, dict) and route in (document.get("paths") or {})

    # --- plumbing -------------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """`data` of the envelope of a successful call; a CliError with the API's message otherwise."""
        response = self._send(self._http, method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            raise CliError(f"{method} {path}: HTTP {response.status_code}, not a fluxrelay answer")
        message = str(body.get("message") or "")
        if response.status_code == 401:
            where = "the key in .local/stack.json" if self.target.local else "FLUXRELAY_API_KEY"
            raise CliError(f"the API key was refused ({message}); check {where}")
        if response.status_code >= 400 or body.get("code") != 200:
            raise CliError(f"{response.status_code}: {message}")
        return body.get("data")

    def _send(self, http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return http.request(method, url, **kwargs)
        except httpx.ConnectError:
            if self.target.local:
                raise CliError(
                    f"the local stack is not running (nothing answers at {self.target.url}); {START_HINT}"
                ) from None
            raise CliError(f"cannot connect to {self.target.url}") from None
        except httpx.TimeoutException:
            raise CliError(f"{method} {url}: no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise CliError(f"{method} {url} failed: {exc}") from None
