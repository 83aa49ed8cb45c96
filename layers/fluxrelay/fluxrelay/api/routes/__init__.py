"""One Powertools `Router` per resource, and the paths each one answers.

`fluxrelay.api.app` imports a router's module at the first request for one of its paths (and
every module for the OpenAPI document): a resource's models and the services only it uses are
not loaded by a cold start that serves another resource. The patterns are `fnmatch` patterns
(`*` also matches `/`); a pattern may cover more than its module's routes (that only imports the
module), and a test checks that each route of a module matches one of its patterns.
"""

from __future__ import annotations

ROUTERS: dict[str, tuple[str, ...]] = {
    "predictions": ("/api/v3/wavespeed-ai/flux-schnell-lora", "/api/v3/predictions/*"),
    "cancel": ("/api/v3/predictions/*/cancel",),
    "history": ("/api/v3/predictions",),
    "uploads": ("/api/v3/media/*", "/api/v3/img2img/uploads"),
    "webhooks": ("/api/v3/webhook/secret*",),
    "deliveries": ("/api/v3/predictions/*/webhooks*", "/api/v3/webhooks/redeliver"),
    "upstream_webhooks": ("/api/v3/upstream/webhooks/*",),
}
