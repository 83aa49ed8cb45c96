"""Cost per job: the meter, the price table and the prediction's `metrics`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from fluxrelay.api.presenter import PredictionPresenter
from fluxrelay.domain import usage
from fluxrelay.domain.jobs import JobItem, OutputItem, new_job_id
from fluxrelay.domain.pricing import PriceTable
from fluxrelay.domain.usage import JobUsage
from fluxrelay.settings import Settings
from tests.fakes.memory import MemoryOutputStore


def test_the_meter_collects_what_the_use_cases_count_for_the_job_it_is_bound_to() -> None:
    usage.count("upstream_polls")  # no meter open: nothing to add to, and no error

    with usage.metering() as meter:
        usage.count("upstream_polls")
        usage.count("upstream_polls", 2)
        usage.bind("job-1")
    usage.count("upstream_polls")  # closed: no longer counted

    assert (meter.job_id, meter.usage) == ("job-1", JobUsage(upstream_polls=3))


def test_the_estimate_prices_each_resource_at_the_list_price() -> None:
    spent = JobUsage(state_transitions=7, lambda_invocations=5, lambda_ms=900, lambda_mb_ms=900 * 512)

    cost = PriceTable().estimate(spent, objects_stored=2, bytes_stored=3 * 1024**3)

    # 7 transitions, 5 requests, 0.45 GB-s, 2 PUTs, 3 GB for a month
    expected = 7 * 0.000025 + 5 * 0.0000002 + 0.45 * 0.0000133334 + 2 * 0.000005 + 3 * 0.023
    assert cost == pytest.approx(expected)


def test_the_price_table_is_one_setting_with_partial_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COST_PRICES", '{"step_functions_transition": 0.0000279}')
    prices = Settings().cost_prices
    assert prices.step_functions_transition == 0.0000279
    assert prices.s3_put == PriceTable().s3_put

    monkeypatch.setenv("COST_PRICES", '{"step_function_transition": 1}')
    with pytest.raises(ValidationError, match="step_function_transition"):
        Settings()


def test_the_prediction_metrics_come_from_the_job_and_the_price_table() -> None:
    job = JobItem(job_id=new_job_id(), owner="alice", request={"prompt": "a fox"}, inference_ms=1250)
    job.usage = JobUsage(
        state_transitions=7, lambda_invocations=5, lambda_ms=300, lambda_mb_ms=9000, upstream_polls=2
    )
    job.outputs = [
        OutputItem(key=f"outputs/x/{n}.png", content_type="image/png", size=1000, width=8, height=8)
        for n in range(2)
    ]
    presenter = PredictionPresenter(MemoryOutputStore(), Settings())

    running = presenter.present(job, with_metrics=True).metrics
    job.finished_at = job.created_at + timedelta(seconds=2.5)
    finished = presenter.metrics(job)

    assert running is not None
    assert running.total_time is None
    assert finished.model_dump() == {
        "predict_time": 1.25,
        "total_time": 2.5,
        "state_transitions": 7,
        "lambda_invocations": 5,
        "lambda_ms": 300,
        "upstream_polls": 2,
        "images_stored": 2,
        "bytes_stored": 2000,
        "estimated_cost_usd": PriceTable().estimate(job.usage, objects_stored=2, bytes_stored=2000),
    }
    # Only the GET routes ask for them; submit answers and webhook bodies stay WaveSpeed's shape.
    assert "metrics" not in presenter.present(job).model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize("disabled", ["true", "false"])
def test_jobs_finished_is_one_emf_record_unless_metrics_are_disabled(
    disabled: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from fluxrelay.observability import count_job_finished

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", disabled)
    count_job_finished("completed", "job-1")

    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    if disabled == "true":
        assert lines == []  # the local stack and the bench print no EMF noise
        return
    (record,) = [json.loads(line) for line in lines]
    assert record["JobsFinished"] == [1.0]
    assert (record["status"], record["job_id"]) == ("completed", "job-1")
    assert "status" in record["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
