"""The public HTTP API (WaveSpeed v3 wire format); its routes are in `fluxrelay.api.routes`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay.api.app import create_app
from fluxrelay.metering import metered
from fluxrelay.observability import logger, metrics

app = create_app()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@metered()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
