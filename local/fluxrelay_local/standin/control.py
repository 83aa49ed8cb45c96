"""The stand-in's control API over HTTP (no auth), built on its public Python API only:

GET|POST /_standin/faults    the faults; POST sets some ({"submit_429": 2}), 400 for unknown ones
POST /_standin/reset         forget faults, tasks, uploads and recorded traffic
GET /_standin/requests       every request received (StandIn.received)
GET /_standin/submissions    every accepted submit (StandIn.submissions)
GET /_standin/webhooks       every webhook attempt (StandIn.webhook_deliveries)
GET /_standin/health         {"ok": true}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fluxrelay_local.standin.wire import ApiError, envelope

if TYPE_CHECKING:
    from fluxrelay_local.standin.server import StandIn

PREFIX = "/_standin/"

Handler = Callable[..., Response]


def control_rules(standin: StandIn) -> list[Rule]:
    """The control routes, each rule's endpoint the function that answers it."""

    def faults(request: Request) -> Response:
        if request.method == "POST":
            changes = request.get_json(silent=True)
            if not isinstance(changes, dict):
                raise ApiError(400, "body must be a JSON object of fault names to values")
            try:
                standin.set_faults(**changes)
            except KeyError as exc:
                raise ApiError(400, str(exc.args[0])) from None
        return envelope(standin.fault_settings())

    def reset(request: Request) -> Response:
        standin.reset()
        return envelope({"reset": True})

    routes: dict[str, tuple[list[str], Handler]] = {
        "faults": (["GET", "POST"], faults),
        "reset": (["POST"], reset),
        "requests": (["GET"], lambda request: envelope(standin.received)),
        "submissions": (["GET"], lambda request: envelope(standin.submissions)),
        "webhooks": (["GET"], lambda request: envelope(standin.webhook_deliveries)),
        "health": (["GET"], lambda request: envelope({"ok": True})),
    }
    return [
        Rule(PREFIX + name, methods=methods, endpoint=handler) for name, (methods, handler) in routes.items()
    ]
