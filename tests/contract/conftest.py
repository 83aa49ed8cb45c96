"""The contract suite runs each case against the in-memory fake and the DynamoDB adapter on moto,
with the unit suite's moto table."""

from tests.unit.conftest import dynamodb  # noqa: F401 - the fixture, shared with the unit suite
