"""A faithful local stand-in for WaveSpeed's v3 API (`wavespeed-ai/flux-schnell-lora`).

It speaks the same paths, envelope, statuses and webhook signatures as the real service
(https://wavespeed.ai/docs), so our backend and the official WaveSpeed SDKs can use it unchanged
through their configurable base URL.

    with StandIn(seconds_per_image=0.5) as upstream:      # port 0: the OS picks a free port
        client = WaveSpeedClient(upstream.url, upstream.api_key)
        upstream.set_faults(submit_429=2)                 # switch faults at run time
        ...
        upstream.submissions                              # what the "paid" upstream saw
        upstream.task(task_id).status                     # one task as upstream sees it

CLI: `python -m fluxrelay_local.standin --port 3001` (Ctrl-C stops it).

Modules: `server` (the routes and the Python API), `tasks` (submit validation and the lazily
computed task states), `images`, `faults`, `webhooks` (the signed sender), `uploads`, `control`
(the `/_standin/` routes), `wire` (envelope and errors).

Choices where the real service is undocumented, all configurable:
- Task status is computed lazily from timestamps (no worker threads): `created` for
  `queue_seconds` (or while a concurrency limit is full), then `processing` for
  `seconds_per_image * num_images`, then `completed` or `failed`. Only webhooks use threads,
  and the rendering of a task's images, which starts with the task (as the real service makes
  them during inference and serves finished files), so an output GET does not wait for it.
- Images are real JPEG/PNG/WebP files of the requested size (`size_multiple` floors the sides,
  1 = exact), deterministic from (seed, prompt, index), served at `/output/<task id>/<n>.<ext>`
  (n from 0). With `enable_base64_output` the outputs are raw base64 (no `data:` prefix) unless
  `base64_data_uri=True`.
- Prompts containing `[fail]` fail; prompts containing `[hang]` never finish; prompts containing
  `[nsfw]` have every output flagged in `has_nsfw_contents`; a LoRA path that is
  neither `owner/repo` nor an https URL makes the task fail later (as upstream most likely does).
- Sync mode waits at most `sync_timeout_seconds` (default 90), then answers the 5004 shape.
- Control routes (no auth): `GET|POST /_standin/faults`, `POST /_standin/reset`,
  `GET /_standin/requests`, `/_standin/submissions`, `/_standin/webhooks`, `/_standin/health`.
"""

from fluxrelay_local.standin.faults import Faults
from fluxrelay_local.standin.images import FORMATS, render_image
from fluxrelay_local.standin.server import StandIn
from fluxrelay_local.standin.tasks import FAIL_MARKER, HANG_MARKER, NSFW_MARKER, TaskInfo
from fluxrelay_local.standin.wire import ApiError

__all__ = [
    "FAIL_MARKER",
    "FORMATS",
    "HANG_MARKER",
    "NSFW_MARKER",
    "ApiError",
    "Faults",
    "StandIn",
    "TaskInfo",
    "render_image",
]
