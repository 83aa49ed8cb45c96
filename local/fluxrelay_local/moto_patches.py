"""Where moto is less faithful than AWS in a way our guarantees depend on, and the fix.

DynamoDB applies each (conditional) write atomically. moto evaluates the condition and then
writes without a lock, so two concurrent requests can both pass a condition only one may pass:
rate limits, idempotency records and the upstream slot pool would overshoot on the local stack.
Serialising moto's write operations gives it the real service's per-request atomicity (a
read-then-write in our own code would still race: the lock covers one request, nothing more).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


@contextmanager
def atomic_dynamodb_writes() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    originals = {name: getattr(DynamoDBBackend, name) for name in _WRITES}

    def locked(original: Any) -> Any:
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return write

    for name, original in originals.items():
        setattr(DynamoDBBackend, name, locked(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)
