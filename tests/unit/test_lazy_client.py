"""An adapter's boto3 client is made at its first use, once, from what the adapter was given."""

from __future__ import annotations

from typing import Any

from fluxrelay.adapters.aws import LazyClient
from fluxrelay.adapters.stepfunctions import StepFunctionsWorkflow


def test_the_factory_runs_at_the_first_use_only_and_once() -> None:
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    lazy = LazyClient("stepfunctions", factory=factory)
    assert made == []
    assert lazy.made is lazy.made is made[0]
    assert len(made) == 1


def test_a_given_client_wins_over_the_factory() -> None:
    given = object()
    lazy = LazyClient("stepfunctions", given, factory=lambda: object())
    assert lazy.made is given


def test_an_adapter_makes_its_client_at_its_first_call_and_keeps_it() -> None:
    tokens: list[str] = []

    class Client:
        def send_task_success(self, **kwargs: Any) -> None:
            tokens.append(kwargs["taskToken"])

    made: list[Client] = []

    def factory() -> Client:
        made.append(Client())
        return made[-1]

    workflow = StepFunctionsWorkflow("arn:aws:states:us-east-1:1:stateMachine:x", client_factory=factory)
    assert made == []
    assert workflow.wake("first")
    assert workflow.wake("second")
    assert (len(made), tokens) == (1, ["first", "second"])
