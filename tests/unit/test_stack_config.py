"""The local stack's configuration from the environment (what `make run` reads)."""

from __future__ import annotations

from fluxrelay_local.stack import StackConfig


def test_nsfw_policy_from_the_environment_becomes_the_template_parameter() -> None:
    assert StackConfig.from_env({"NSFW_POLICY": "blur"}).parameter_overrides == {"NsfwPolicy": "blur"}
    assert StackConfig.from_env({}).parameter_overrides == {}
