"""What a job's orchestration costs: the list prices its usage counters are multiplied by.

Apart from `usage.py`: every task counts usage, only a cost estimate (the API's metrics, the
bench) needs the prices, and building this model cost each task's cold start.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fluxrelay.domain.usage import JobUsage


class PriceTable(BaseModel):
    """List prices in USD (us-east-1, Standard workflows, Lambda on arm64, S3 Standard).

    Override any of them with the `COST_PRICES` setting, a JSON object such as
    `{"step_functions_transition": 0.0000279}` for another region.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_functions_transition: float = Field(0.000025, ge=0)
    lambda_request: float = Field(0.0000002, ge=0)
    lambda_gb_second: float = Field(0.0000133334, ge=0)
    s3_put: float = Field(0.000005, ge=0)
    # One month of storage is counted per stored byte.
    s3_gb_month: float = Field(0.023, ge=0)

    def estimate(self, usage: JobUsage, *, objects_stored: int, bytes_stored: int) -> float:
        """The orchestration cost of a job in USD (WaveSpeed's own price is not included)."""
        gb_seconds = usage.lambda_mb_ms / 1024 / 1000
        return (
            usage.state_transitions * self.step_functions_transition
            + usage.lambda_invocations * self.lambda_request
            + gb_seconds * self.lambda_gb_second
            + objects_stored * self.s3_put
            + bytes_stored / 1024**3 * self.s3_gb_month
        )
