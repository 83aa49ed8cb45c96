"""Static checks of statemachines/generation.asl.json against the task models (models/workflow.py).

moto runs this ASL in the integration tests but forgives what AWS does not (a Next to a missing
state, a Choice on a missing field): these checks stand in for AWS's own validation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from statelint.config import Config
from statelint.linter import Linter

from fluxrelay.models.tasks import CheckResultOutput, JobStatusOutput, NotifyOutput
from fluxrelay.models.workflow import ResultRoute, WakeOutput, WakeRoute, WebhookDelivery, WorkflowStart

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachines" / "generation.asl.json"
TEMPLATE_PATH = ROOT / "template.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

EXECUTION_INPUT = set(WorkflowStart.model_fields)
# What each task function always returns (its output model), by substitution name.
TASK_OUTPUTS = {
    # The wakeable wait's result is what the wake sent (at its ResultPath, beside its input).
    "ParkJobFunctionArn": set(WakeOutput.model_fields),
    "CheckResultFunctionArn": set(CheckResultOutput.model_fields),
    "StoreOutputsFunctionArn": set(JobStatusOutput.model_fields),
    "MarkFailedFunctionArn": set(JobStatusOutput.model_fields),
    "NotifyFunctionArn": set(NotifyOutput.model_fields),
}
TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
STATES_WITH_CATCH = {"CheckResult", "StoreOutputs"}
WAKEABLE_WAIT = "WaitForResult"
MAX_TRANSITIONS = 8


def _substitutions() -> dict[str, str]:
    """Plausible values for every DefinitionSubstitution, derived from the template."""
    template = cfn_yaml.load(str(TEMPLATE_PATH))
    subs = template["Resources"]["GenerationStateMachine"]["Properties"]["DefinitionSubstitutions"]
    values = {}
    for key, value in subs.items():
        if "Fn::GetAtt" in value:
            values[key] = f"arn:aws:lambda:us-east-1:123456789012:function:fluxrelay-{value['Fn::GetAtt'][0]}"
        else:
            values[key] = str(template["Parameters"][value["Ref"]]["Default"])
    return values


def render(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The definition with every placeholder (quoted or bare) kept recognisable as "{{Name}}"."""
    return json.loads(re.sub(r'"?\$\{([A-Za-z0-9_]+)\}"?', r'"{{\1}}"', ASL_PATH.read_text()))


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(render(ASL_PATH.read_text(), _substitutions()))


@pytest.fixture(scope="module")
def states(asl: dict[str, Any]) -> dict[str, Any]:
    return asl["States"]


def _task_function(raw: dict[str, Any], name: str) -> str:
    state = raw["States"][name]
    resource = state["Resource"]
    if resource == "arn:aws:states:::lambda:invoke.waitForTaskToken":
        resource = state["Parameters"]["FunctionName"]
    match = re.fullmatch(r"\{\{(\w+)\}\}", resource)
    assert match, f"{name}: Resource must be a plain function ARN substitution"
    return match.group(1)


def _successors(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, target) for every edge leaving a state."""
    edges = [("next", state["Next"])] if "Next" in state else []
    edges += [("choice", c["Next"]) for c in state.get("Choices", [])]
    edges += [("default", state["Default"])] if "Default" in state else []
    edges += [("catch", c["Next"]) for c in state.get("Catch", [])]
    return edges


def _paths_read(state: dict[str, Any]) -> set[str]:
    """Top-level input fields a state reads with JSONPath."""
    paths: list[str] = []
    for key in ("SecondsPath", "TimeoutSecondsPath"):
        if key in state:
            paths.append(state[key])
    parameters = dict(state.get("Parameters", {}))
    parameters.update(parameters.pop("Payload", {}))
    for key, value in parameters.items():
        if key.endswith(".$") and not value.startswith("$$."):
            paths.append(value)

    guarded: set[str] = set()

    def rule_variables(rule: dict[str, Any]) -> None:
        # A presence test reads nothing; a field it tested is safe in the rules after it.
        if "Variable" in rule and "IsPresent" not in rule and rule["Variable"] not in guarded:
            paths.append(rule["Variable"])
        for nested in rule.get("And", []) + rule.get("Or", []) + ([rule["Not"]] if "Not" in rule else []):
            rule_variables(nested)

    for rule in state.get("Choices", []):
        rule_variables(rule)
        # Rules are tried in order: after "missing: go elsewhere", the field is there.
        test = rule.get("Not", {})
        if test.get("IsPresent") is True:
            guarded.add(test["Variable"])
    fields = set()
    for path in paths:
        match = re.fullmatch(r"\$\.(\w+)(?:\..*)?", path)
        assert match, f"unexpected path {path}"
        fields.add(match.group(1))
    return fields


def _fields_at_entry(raw: dict[str, Any]) -> dict[str, set[str]]:
    """Fields every input of each state is guaranteed to carry (forward analysis, intersection)."""
    states = raw["States"]
    everything = set().union(EXECUTION_INPUT, *TASK_OUTPUTS.values(), {"error", "wait", "woken"})
    entry = {name: set(everything) for name in states}
    entry[raw["StartAt"]] = set(EXECUTION_INPUT)
    changed = True
    while changed:
        changed = False
        incoming: dict[str, list[set[str]]] = {name: [] for name in states}
        incoming[raw["StartAt"]].append(set(EXECUTION_INPUT))
        for name, state in states.items():
            for kind, target in _successors(state):
                if kind == "catch":
                    (catcher,) = [c for c in state["Catch"] if c["Next"] == target]
                    incoming[target].append(entry[name] | {catcher["ResultPath"].removeprefix("$.")})
                elif state["Type"] == "Task" and "ResultPath" in state and state["ResultPath"] is None:
                    incoming[target].append(entry[name])
                elif state["Type"] == "Task" and state.get("ResultPath", "$") != "$":
                    incoming[target].append(entry[name] | {state["ResultPath"].removeprefix("$.")})
                elif state["Type"] == "Task":
                    incoming[target].append(TASK_OUTPUTS[_task_function(raw, name)])
                else:  # Choice, Wait, Pass without Result: the input passes through
                    incoming[target].append(entry[name])
        for name in states:
            new = set.intersection(*incoming[name]) if incoming[name] else set(everything)
            if new != entry[name]:
                entry[name], changed = new, True
    return entry


def test_statelint_accepts_the_rendered_definition() -> None:
    rendered = render(ASL_PATH.read_text(), _substitutions())
    assert PLACEHOLDER.search(rendered) is None
    assert Linter.validate(json.loads(rendered), Config()) == []


def test_statelint_catches_a_dangling_next(asl: dict[str, Any]) -> None:
    # The linter really runs: a broken copy is rejected.
    broken = json.loads(json.dumps(asl))
    broken["States"]["CheckResult"]["Next"] = "NoSuchState"
    assert Linter.validate(broken, Config()) != []


def test_definition_is_jsonpath_with_a_bounded_execution_time(asl: dict[str, Any]) -> None:
    assert asl.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert all(s.get("QueryLanguage", "JSONPath") == "JSONPath" for s in asl["States"].values())
    assert isinstance(asl["TimeoutSeconds"], int)
    assert asl["TimeoutSeconds"] > 0


def test_every_transition_target_exists_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    states = asl["States"]
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        assert name in states, f"transition to missing state {name}"
        seen.add(name)
        todo += [target for _, target in _successors(states[name])]
    assert seen == set(states)


def test_tasks_invoke_plain_function_arns_of_contract_functions(raw: dict[str, Any]) -> None:
    tasks = [name for name, s in raw["States"].items() if s["Type"] == "Task"]
    assert {_task_function(raw, name) for name in tasks} == set(TASK_OUTPUTS)


def test_every_task_retries_transient_lambda_errors(states: dict[str, Any]) -> None:
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        transient = [r for r in state.get("Retry", []) if set(r["ErrorEquals"]) == TRANSIENT_LAMBDA_ERRORS]
        assert len(transient) == 1, name
        (retry,) = transient
        assert retry["IntervalSeconds"] == 1
        assert retry["MaxAttempts"] == 3
        assert retry["BackoffRate"] == 2
        assert retry["JitterStrategy"] == "FULL"
        # A States.ALL retrier must come last; none is used here at all.
        assert all("States.ALL" not in r["ErrorEquals"] for r in state["Retry"]), name


def test_check_result_backs_off_on_upstream_outages_and_rate_limits(states: dict[str, Any]) -> None:
    retriers = states["CheckResult"]["Retry"]
    upstream = [
        r
        for r in retriers
        if {"UpstreamUnavailableError", "UpstreamRateLimitedError"} <= set(r["ErrorEquals"])
    ]
    assert len(upstream) == 1
    assert upstream[0]["BackoffRate"] > 1
    assert upstream[0]["MaxAttempts"] >= 2


def test_upstream_error_names_are_real_exception_classes() -> None:
    from fluxrelay.domain import errors

    assert issubclass(errors.UpstreamUnavailableError, Exception)
    assert issubclass(errors.UpstreamRateLimitedError, Exception)


def test_failures_are_caught_into_mark_failed_where_the_contract_says(states: dict[str, Any]) -> None:
    for name, state in states.items():
        catchers = state.get("Catch", [])
        if name in STATES_WITH_CATCH:
            assert catchers == [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MarkFailed"}
            ]
        elif name == WAKEABLE_WAIT:
            # A timeout (no push came) or a failing park falls back to a poll (through the choice
            # every wait ends in), never to a failure.
            assert catchers == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.wait", "Next": "Woken"}]
        else:
            assert catchers == [], name
    assert states["MarkFailed"]["Parameters"] == {"job_id.$": "$.job_id", "error.$": "$.error"}


def test_tasks_pass_only_what_the_function_needs(states: dict[str, Any]) -> None:
    expected = {
        WAKEABLE_WAIT: {
            "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:fluxrelay-ParkJobFunction",
            "Payload": {"job_id.$": "$.job_id", "token.$": "$$.Task.Token"},
        },
        "CheckResult": {"job_id.$": "$.job_id"},
        "StoreOutputs": {"job_id.$": "$.job_id"},
        "MarkFailed": {"job_id.$": "$.job_id", "error.$": "$.error"},
        "Notify": {"job_id.$": "$.job_id"},
    }
    assert {n: s["Parameters"] for n, s in states.items() if s["Type"] == "Task"} == expected


def test_every_field_a_state_reads_is_always_present(raw: dict[str, Any]) -> None:
    # AWS fails the execution on a Choice/Parameters path to a missing field (moto does not).
    entry = _fields_at_entry(raw)
    for name, state in raw["States"].items():
        missing = _paths_read(state) - entry[name]
        assert not missing, f"{name} reads {missing}, not always in its input {entry[name]}"


def test_the_wait_between_checks_is_a_wakeable_task_timing_out_after_the_poll_wait(
    states: dict[str, Any],
) -> None:
    wait = states[WAKEABLE_WAIT]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["TimeoutSecondsPath"] == "$.wait_seconds"
    assert wait["ResultPath"] == "$.woken"  # where the wake says to go
    assert wait["Next"] == "Woken"
    assert [n for n, s in states.items() if s["Type"] == "Wait"] == ["WaitBeforeRedelivery"]


def test_choices_route_on_the_task_models_values(states: dict[str, Any]) -> None:
    compared = {
        (rule["Variable"], rule["StringEquals"])
        for state in states.values()
        for rule in state.get("Choices", [])
        if "StringEquals" in rule
    }
    assert compared == {
        ("$.woken.next", WakeRoute.STORE_OUTPUTS.value),
        ("$.next", ResultRoute.STORE_OUTPUTS.value),
        ("$.next", ResultRoute.NOTIFY.value),
        ("$.webhook", WebhookDelivery.RETRYING.value),
    }


def test_a_wait_that_timed_out_or_was_woken_to_check_goes_to_the_check(states: dict[str, Any]) -> None:
    for wake in (None, WakeRoute.CHECK):
        entered = _run(states, routes=[ResultRoute.NOTIFY], wakes=[wake])
        assert entered[:3] == ["WaitForResult", "Woken", "CheckResult"], wake


def test_choices_route_results_per_contract(states: dict[str, Any]) -> None:
    assert _run(states, routes=[ResultRoute.STORE_OUTPUTS])[:5] == [
        "WaitForResult",
        "Woken",
        "CheckResult",
        "IsFinished",
        "StoreOutputs",
    ]
    assert _run(states, routes=[ResultRoute.NOTIFY])[4] == "Notify"
    waits = _run(states, routes=[ResultRoute.WAIT, ResultRoute.WAIT, ResultRoute.STORE_OUTPUTS])
    assert waits.count("WaitForResult") == 3


def _run(
    states: dict[str, Any],
    routes: list[ResultRoute],
    webhooks: tuple[WebhookDelivery, ...] = (WebhookDelivery.NONE,),
    wakes: list[WakeRoute | None] | None = None,
    limit: int = 200,
) -> list[str]:
    """Walk the graph the way the workflow runs for scripted task results; returns entered states.
    `wakes`: how each wait ends, woken to a route or timed out (None; the default every time)."""
    polls, deliveries, woken = iter(routes), iter(webhooks), iter(wakes or [])
    outputs = {
        "CheckResult": lambda: CheckResultOutput(
            job_id="j", status="processing", next=next(polls), wait_seconds=1
        ).model_dump(mode="json"),
        "StoreOutputs": lambda: {"job_id": "j", "status": "completed"},
        "MarkFailed": lambda: {"job_id": "j", "status": "failed"},
        "Notify": lambda: NotifyOutput(
            job_id="j", attempt=1, webhook=next(deliveries), wait_seconds=5
        ).model_dump(mode="json"),
    }

    def matches(rule: dict[str, Any], data: dict[str, Any]) -> bool:
        if "Or" in rule:
            return any(matches(r, data) for r in rule["Or"])
        if "And" in rule:
            return all(matches(r, data) for r in rule["And"])
        if "Not" in rule:
            return not matches(rule["Not"], data)
        value: Any = data
        for part in rule["Variable"].removeprefix("$.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if "IsPresent" in rule:
            assert set(rule) <= {"Variable", "IsPresent", "Next"}, rule
            return (value is not None) is rule["IsPresent"]
        assert set(rule) <= {"Variable", "StringEquals", "Next"}, rule
        assert value is not None, f"{rule['Variable']} is missing: AWS would fail the execution"
        return bool(value == rule["StringEquals"])

    entered, name, data = [], "WaitForResult", {"job_id": "j", "wait_seconds": 2}
    while len(entered) < limit:
        entered.append(name)
        state = states[name]
        if state["Type"] in {"Succeed", "Fail"}:
            return entered
        if name == WAKEABLE_WAIT:
            route = next(woken, None)
            if route is None:  # timed out: the Catch edge, the error at its ResultPath
                (catcher,) = state["Catch"]
                data = {**data, catcher["ResultPath"].removeprefix("$."): {"Error": "States.Timeout"}}
                name = catcher["Next"]
                continue
            woken_output = WakeOutput(next=route).model_dump(mode="json")
            data = {**data, state["ResultPath"].removeprefix("$."): woken_output}
        elif state["Type"] == "Task" and name in outputs:
            data = outputs[name]()
        if state["Type"] == "Choice":
            name = next((c["Next"] for c in state["Choices"] if matches(c, data)), state["Default"])
        else:
            name = state["Next"]
    raise AssertionError(f"no end after {limit} states: {entered[-10:]}")


def test_one_image_job_finished_by_the_push_skips_the_check(states: dict[str, Any]) -> None:
    entered = _run(states, routes=[], wakes=[WakeRoute.STORE_OUTPUTS])
    assert entered == ["WaitForResult", "Woken", "StoreOutputs", "Notify", "WebhookRetry", "Done"]


def test_one_image_job_finishing_on_first_poll_fits_the_transition_budget(states: dict[str, Any]) -> None:
    # The push was lost: the wait times out and the first check finds the result.
    entered = _run(states, routes=[ResultRoute.STORE_OUTPUTS], webhooks=(WebhookDelivery.NONE,))
    assert entered == [
        "WaitForResult",
        "Woken",
        "CheckResult",
        "IsFinished",
        "StoreOutputs",
        "Notify",
        "WebhookRetry",
        "Done",
    ]
    assert len(entered) <= MAX_TRANSITIONS


def test_each_extra_poll_costs_four_transitions(states: dict[str, Any]) -> None:
    # A push that is lost or early: one more wait, its choice, a check and a choice per poll.
    once = _run(states, routes=[ResultRoute.STORE_OUTPUTS], webhooks=(WebhookDelivery.DELIVERED,))
    entered = _run(
        states, routes=[ResultRoute.WAIT, ResultRoute.STORE_OUTPUTS], webhooks=(WebhookDelivery.DELIVERED,)
    )
    assert len(entered) == len(once) + 4


def test_webhook_retries_loop_through_a_wait_until_delivered_or_given_up(states: dict[str, Any]) -> None:
    retrying, gave_up = WebhookDelivery.RETRYING, WebhookDelivery.GAVE_UP
    entered = _run(states, routes=[ResultRoute.NOTIFY], webhooks=(retrying, retrying, gave_up))
    assert entered.count("WaitBeforeRedelivery") == 2
    assert entered.count("Notify") == 3
    assert entered[-1] == "Done"


def test_task_transitions_add_up_to_the_states_every_run_enters(
    states: dict[str, Any], asl: dict[str, Any]
) -> None:
    # Every run from StartAt to the end (each state entered at most twice, so every loop is taken)
    # enters exactly as many states as its task invocations stand for. A task that fails for
    # good (a Catch edge) is counted as if it had finished: one state too many, an estimate.
    from fluxrelay.models.workflow import TASK_TRANSITIONS

    assert set(TASK_TRANSITIONS) == {name for name, state in states.items() if state["Type"] == "Task"}
    runs: list[list[str]] = []

    def walk(path: list[str]) -> None:
        state = states[path[-1]]
        targets = [target for kind, target in _successors(state) if kind != "catch"]
        if not targets:
            runs.append(path)
        for target in targets:
            if path.count(target) < 2:
                walk([*path, target])

    walk([asl["StartAt"]])
    assert len(runs) > 3
    for run in runs:
        assert len(run) == sum(TASK_TRANSITIONS.get(name, 0) for name in run), run
