"""Patches to moto's in-process backends, each a context manager the local stack enters.

`atomic_dynamodb_requests`: where moto is less faithful than AWS in a way our guarantees depend
on. DynamoDB applies each (conditional) write atomically and a read sees an item before or after
a write, never during it. moto evaluates the condition and then writes without a lock, so two
concurrent requests can both pass a condition only one may pass (rate limits, idempotency records
and the upstream slot pool would overshoot), and it updates the stored item in place, so a read
(or UpdateItem's own copy of the old item) that walks it meanwhile fails with "dictionary changed
size during iteration". Handling one DynamoDB request at a time gives it the real service's
per-request atomicity (a read-then-write in our own code would still race: the lock covers one
request, nothing more).

`scaled_time`: moto's Step Functions interpreter waits in real time (Wait states, Retry
intervals); tests scale those waits down so a job runs in milliseconds.

`cached_service_lookup`: overhead the real endpoints do not have. moto's server finds the
backend of every request by listing its own package directory and matching a few hundred URL
patterns (about 2 ms of CPU), under one lock that every request of every service takes; the
answer for a host never changes, so it is looked up once per host. So are the names of a response
class's methods, which moto listed with `inspect.getmembers` at every request to check that the
action exists.

`plain_attribute_values`: the same kind of overhead. moto serializes every response by walking
its botocore shape member by member; a DynamoDB item is a tree of AttributeValues, so each
GetItem, PutItem or UpdateItem with ReturnValues spent milliseconds of CPU per item (most of
what a DynamoDB call cost here). An AttributeValue is written out in one pass instead, to the
same JSON (binary values base64, as the shape walk does). Before that, moto turns the result into
plain dicts with a function that re-imports a module and tries five type checks at every node
(about half a millisecond per job item); items, plain dicts, lists and strings take a short path
now, and everything else (binary values, timestamps) still goes through moto's own function.

`parsed_once`: the same kind of overhead. moto's Step Functions lexes and parses the state
machine's definition with ANTLR at every execution start (tens of milliseconds of CPU); the
parse tree of a definition is kept, and each execution still gets its own freshly built
evaluation components (the tree is only read).

`shared_lambda_clients`: the same kind of overhead. moto's Step Functions interpreter builds a
new boto3 Lambda client (15-25 ms of CPU) for every Lambda task it runs; it keeps one per region
and endpoint instead (boto3 clients are thread-safe).

`in_process_requests`: the same kind of overhead. Every handler runs in the moto server's own
process, yet each of its AWS calls went through a socket: werkzeug's server answers every request
with `Connection: close`, so each call (about twenty per job) opened a TCP connection, started a
server thread and parsed HTTP on both sides. A boto3 client of this process hands its request to
the server's WSGI application directly instead (werkzeug's test client builds the same WSGI
environ); the same application answers, so what moto does with a request does not change.
Clients of other processes, presigned URLs and plain HTTP clients still use the socket.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit


@contextmanager
def atomic_dynamodb_requests() -> Iterator[None]:
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()  # re-entrant: a request's own in-process calls may come back here
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


@contextmanager
def cached_service_lookup() -> Iterator[None]:
    from moto.core import responses
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    original_names = responses.method_names_from_class
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        # The dispatcher calls this under its own lock; a race would only look a host up twice.
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
    # Only read (`action in names`); a response class's methods are defined once, with the class.
    responses.method_names_from_class = functools.cache(original_names)
    try:
        yield
    finally:
        DomainDispatcherApplication.get_backend_for_host = original  # type: ignore[method-assign]
        responses.method_names_from_class = original_names


_ATTRIBUTE_VALUE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


@contextmanager
def plain_attribute_values() -> Iterator[None]:
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb import responses
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = BaseJSONSerializer._serialize_type_structure
    original_to_dict = responses.dynamo_to_dict

    def to_dict(obj: Any) -> Any:
        kind = type(obj)
        if kind is dict:
            return {k: to_dict(v) for k, v in obj.items()}
        if kind is list:
            return [to_dict(v) for v in obj]
        if kind in (str, int, float, bool) or obj is None:
            return obj
        if not isinstance(obj, DynamoType | datetime) and hasattr(obj, "to_json"):
            return to_dict(obj.to_json())  # an Item: what moto's function does with it
        return original_to_dict(obj)

    def plain(serializer: Any, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for member, item in value.items():
            if member not in _ATTRIBUTE_VALUE_MEMBERS or item is None:
                continue  # what the shape walk leaves out
            if member == "B":
                out[member] = serializer._base64(item)
            elif member == "BS":
                out[member] = [serializer._base64(b) for b in item]
            elif member == "M":
                out[member] = {k: plain(serializer, v) for k, v in item.items()}
            elif member == "L":
                out[member] = [plain(serializer, v) for v in item]
            else:
                out[member] = item
        return out

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and key and isinstance(value, dict):
            self._default_serialize(serialized, plain(self, value), shape, key)
            return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
    responses.dynamo_to_dict = to_dict
    try:
        yield
    finally:
        BaseJSONSerializer._serialize_type_structure = original  # type: ignore[method-assign]
        responses.dynamo_to_dict = original_to_dict


@contextmanager
def parsed_once() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    original = AmazonStateLanguageParser.parse
    trees: dict[str, Any] = {}
    lock = threading.Lock()

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            tree = trees.get(definition)
        if tree is None:
            # Syntax errors raise here, every time, as before; only good trees are kept.
            _, tree = original(definition)
            with lock:
                if len(trees) > 32:  # a few state machines, each re-created now and then
                    trees.clear()
                trees[definition] = tree
        return Preprocessor().visit(tree), tree

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    try:
        yield
    finally:
        AmazonStateLanguageParser.parse = staticmethod(original)  # type: ignore[method-assign]


@contextmanager
def shared_lambda_clients() -> Iterator[None]:
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = lambda_eval_utils.boto_client_for
    clients: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # The original ignores the credentials (it signs with fixed fake keys).
        key = (region, service, moto_server_port(), botocore_stubber.enabled)
        with lock:
            if key not in clients:
                clients[key] = original(region=region, service=service, state_credentials=state_credentials)
            return clients[key]

    lambda_eval_utils.boto_client_for = boto_client_for
    try:
        yield
    finally:
        lambda_eval_utils.boto_client_for = original


@contextmanager
def scaled_time(factor: float) -> Iterator[None]:
    """Multiply every Step Functions Wait and Retry interval, and every task's TimeoutSecondsPath
    (the wakeable wait's poll fallback is a wait too), by `factor` (1.0 changes nothing)."""
    if factor == 1.0:
        yield
        return
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSecondsPath
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        # The original re-enters waiting on spurious wake-ups; a scaled wait is short enough
        # that a single wait on the execution's stop event is faithful.
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * factor)

    class _ScaledTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            time.sleep(seconds * factor)

    original_timeout = TimeoutSecondsPath._eval_seconds

    def _scaled_timeout(self: Any, env: Any) -> float:
        return float(original_timeout(self, env)) * factor

    original_wait, original_time = WaitFunction._wait_interval, retrier_decl.time
    WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]
    retrier_decl.time = _ScaledTime()  # type: ignore[assignment]
    TimeoutSecondsPath._eval_seconds = _scaled_timeout  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        WaitFunction._wait_interval = original_wait  # type: ignore[method-assign]
        retrier_decl.time = original_time
        TimeoutSecondsPath._eval_seconds = original_timeout  # type: ignore[method-assign]


@contextmanager
def in_process_requests(app: Callable[..., Any], base_urls: tuple[str, ...]) -> Iterator[None]:
    """boto3 clients of this process created inside the block send requests addressed to one of
    `base_urls` to the WSGI `app` in the calling thread (botocore's `before-send` event, as
    moto's own in-memory mode does)."""
    import boto3
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse
    from werkzeug.test import Client

    active = True

    def send(request: Any, **_: Any) -> AWSResponse | None:
        if not (active and request.url.startswith(base_urls)):
            return None  # botocore sends it over the network as usual
        url = urlsplit(request.url)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        response = Client(app, use_cookies=False).open(
            url.path,
            base_url=f"{url.scheme}://{url.netloc}",
            method=request.method,
            query_string=url.query,
            headers=[(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()],
            data=body or b"",
        )
        return AWSResponse(
            request.url, response.status_code, dict(response.headers), MockRawResponse(response.get_data())
        )

    events = boto3._get_default_session().events
    events.register_first("before-send", send)
    try:
        yield
    finally:
        active = False  # clients made meanwhile keep the handler: it now lets everything through
        events.unregister("before-send", send)
