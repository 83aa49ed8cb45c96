"""An API Gateway HTTP API emulator: the template's `HttpApi` routes as payload 2.0 Lambda events.

moto's CloudFormation skips `AWS::ApiGatewayV2::*`, so the local stack serves the routes itself,
the way API Gateway would: routes and Lambda REQUEST authorizers (payload 2.0) come from the SAM
template; a request becomes the payload 2.0 event; the function's answer is mapped back to HTTP
(including the "format inference" for answers without a statusCode). Gateway-generated errors use
API Gateway's own bodies (`{"message": "Not Found"}` ...), never the application's envelope.
Limits kept like the real service: 10 MB request payload, 30 s integration timeout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

LOG = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# Lambda's synchronous invocation payload quota: a 10 MB body that API Gateway accepts still fails
# here once base64 and the event around it are counted (status assumed 413; see the report/docs).
MAX_LAMBDA_EVENT_BYTES = 6 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 30.0
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|xml|javascript|graphql|[\w.+-]*\+(json|xml))|image/svg\+xml)$", re.I
)

# (logical id, event) -> (JSON payload, errored, logs): LambdaRunner.invoke_as_lambda.
Invoker = Callable[[str, Any], tuple[str, bool, str]]


@dataclass(frozen=True)
class Authorizer:
    """A Lambda REQUEST authorizer of an HttpApi."""

    name: str
    function_logical_id: str
    identity_sources: tuple[str, ...] = ()
    simple_responses: bool = False
    payload_version: str = "2.0"
    ttl_seconds: int = 0


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or "ANY"
    path: str  # "/items/{id}", "/files/{proxy+}" or "$default"
    function_logical_id: str
    api_logical_id: str
    authorizer: Authorizer | None
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def specificity(self) -> tuple[int, int, int, int]:
        """Sort key: API Gateway prefers the most specific path, then a method over ANY."""
        segments = [s for s in self.path.split("/") if s]
        greedy = int(any(s.endswith("+}") for s in segments))
        literal = sum(1 for s in segments if not s.startswith("{"))
        return (int(self.path == "$default"), greedy, -literal, int(self.method == "ANY"))


class TemplateRouteError(ValueError):
    """The template's HttpApi configuration cannot be emulated."""


def _logical_id_of(ref: Any) -> str:
    """The logical id in `!GetAtt Fn.Arn` / `!Ref Fn` / `!Sub ${Fn.Arn}`."""
    if isinstance(ref, dict):
        if "Fn::GetAtt" in ref:
            value = ref["Fn::GetAtt"]
            return str(value[0] if isinstance(value, list) else value.split(".")[0])
        if "Ref" in ref:
            return str(ref["Ref"])
        if "Fn::Sub" in ref and isinstance(ref["Fn::Sub"], str):
            match = re.fullmatch(r"\$\{(\w+)(\.Arn)?\}", ref["Fn::Sub"])
            if match:
                return match.group(1)
    raise TemplateRouteError(f"cannot tell which function {ref!r} refers to")


def _compile(path: str) -> re.Pattern[str]:
    if path == "$default":
        return re.compile(r"^/.*$")
    parts = []
    for segment in path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        param = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif param:
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


def _authorizers(auth: dict[str, Any] | None) -> tuple[dict[str, Authorizer], str | None]:
    auth = auth or {}
    found: dict[str, Authorizer] = {}
    for name, spec in (auth.get("Authorizers") or {}).items():
        if "FunctionArn" not in spec:
            # JWT authorizers are out of scope for the local stack.
            raise TemplateRouteError(f"authorizer {name}: only Lambda authorizers are emulated")
        identity = spec.get("Identity") or {}
        sources = [f"$request.header.{h}" for h in identity.get("Headers", [])]
        sources += [f"$request.querystring.{q}" for q in identity.get("QueryStrings", [])]
        found[name] = Authorizer(
            name=name,
            function_logical_id=_logical_id_of(spec["FunctionArn"]),
            identity_sources=tuple(sources),
            simple_responses=bool(spec.get("EnableSimpleResponses", False)),
            payload_version=str(spec.get("AuthorizerPayloadFormatVersion", "2.0")),
            ttl_seconds=int(identity.get("ReauthorizeEvery", 0) or 0),
        )
    return found, auth.get("DefaultAuthorizer")


def routes_from_template(sam: dict[str, Any]) -> list[Route]:
    """The HttpApi routes declared by the SAM template's functions, most specific first."""
    resources = sam["Resources"]
    globals_auth = (sam.get("Globals", {}).get("HttpApi") or {}).get("Auth")
    apis: dict[str, tuple[dict[str, Authorizer], str | None]] = {
        "ServerlessHttpApi": _authorizers(globals_auth)
    }
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::HttpApi":
            apis[logical_id] = _authorizers((resource.get("Properties") or {}).get("Auth"))
    routes: list[Route] = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            api_id = _logical_id_of(props["ApiId"]) if "ApiId" in props else "ServerlessHttpApi"
            authorizers, default = apis.get(api_id, ({}, None))
            wanted = (props.get("Auth") or {}).get("Authorizer", default)
            if wanted in (None, "NONE"):
                authorizer = None
            elif wanted in authorizers:
                authorizer = authorizers[wanted]
            else:
                raise TemplateRouteError(f"{logical_id}.{event_name}: unknown authorizer {wanted}")
            path = props.get("Path", "$default")
            method = str(props.get("Method", "ANY")).upper()
            routes.append(
                Route(
                    method="ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method,
                    path=path,
                    function_logical_id=logical_id,
                    api_logical_id=api_id,
                    authorizer=authorizer,
                    pattern=_compile(path),
                )
            )
    routes.sort(key=Route.specificity)
    return routes


def _json_response(status: int, message: str, request_id: str) -> Response:
    return Response(
        json.dumps({"message": message}),
        status=status,
        headers={"content-type": "application/json", "apigw-requestid": request_id},
    )


def _is_text(content_type: str | None, body: bytes) -> bool:
    if not content_type:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return bool(_TEXT_TYPES.match(content_type.split(";")[0].strip()))


@dataclass
class _CachedAuth:
    expires: float
    allowed: bool
    context: dict[str, Any]


class HttpApiEmulator:
    """A WSGI app (and threaded werkzeug server) serving HttpApi routes as payload 2.0 events."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Invoker,
        *,
        region: str,
        stack_name: str = "local",
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.routes = routes
        self._invoke = invoke
        self.region = region
        self.integration_timeout = integration_timeout
        self.max_payload_bytes = max_payload_bytes
        self._api_ids = {
            r.api_logical_id: hashlib.sha256(f"{stack_name}/{r.api_logical_id}".encode()).hexdigest()[:10]
            for r in routes
        }
        self._auth_cache: dict[tuple[str, tuple[str, ...]], _CachedAuth] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- server ---------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> int:
        self._server = make_server(host, port, self, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fluxrelay-local-apigw", daemon=True
        )
        self._thread.start()
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- WSGI -----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.monotonic()
        response = self.handle(request)
        LOG.info(
            "%s %s -> %s (%.0f ms)",
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method not in ("ANY", method):
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None

    def handle(self, request: Request) -> Response:
        request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
        matched = self.match(request.method, request.path)
        if matched is None:
            return _json_response(404, "Not Found", request_id)
        route, path_params = matched
        if (request.content_length or 0) > self.max_payload_bytes:
            return _json_response(413, "Request Entity Too Large", request_id)
        body = request.get_data(cache=False)
        if len(body) > self.max_payload_bytes:
            return _json_response(413, "Request Entity Too Large", request_id)

        event = self._event(request, route, path_params, body, request_id)
        if len(json.dumps(event)) > MAX_LAMBDA_EVENT_BYTES:
            LOG.warning("%s: the event exceeds Lambda's 6 MB invocation payload quota", route.route_key)
            return _json_response(413, "Request Entity Too Large", request_id)
        if route.authorizer is not None:
            denied = self._authorize(route, event, request_id)
            if denied is not None:
                return denied
        return self._integrate(route, event, request_id)

    # --- events ---------------------------------------------------------------------------------
    def _event(
        self,
        request: Request,
        route: Route,
        path_params: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers.items():
            key = name.lower()
            if key == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        host = headers.get("host", f"{request.host}")
        headers.setdefault("x-forwarded-for", request.remote_addr or "127.0.0.1")
        headers.setdefault("x-forwarded-proto", request.scheme)
        headers.setdefault("x-forwarded-port", host.rsplit(":", 1)[-1] if ":" in host else "80")
        headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
        raw_query = request.query_string.decode("latin-1")
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": request.path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self._api_ids[route.api_logical_id],
                "domainName": host,
                "domainPrefix": host.split(".")[0].split(":")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": route.route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_params:
            event["pathParameters"] = path_params
        if body:
            if _is_text(headers.get("content-type"), body):
                try:
                    event["body"] = body.decode("utf-8")
                except UnicodeDecodeError:
                    event["body"] = base64.b64encode(body).decode()
                    event["isBase64Encoded"] = True
            else:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event

    def _route_arn(self, route: Route, event: dict[str, Any]) -> str:
        api_id = self._api_ids[route.api_logical_id]
        method = event["requestContext"]["http"]["method"]
        return f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{api_id}/$default/{method}{event['rawPath']}"

    def _identity(self, authorizer: Authorizer, event: dict[str, Any]) -> list[str] | None:
        values: list[str] = []
        for source in authorizer.identity_sources:
            if source.startswith("$request.header."):
                value = event["headers"].get(source.removeprefix("$request.header.").lower())
            elif source.startswith("$request.querystring."):
                value = (event.get("queryStringParameters") or {}).get(
                    source.removeprefix("$request.querystring.")
                )
            else:
                value = None
            if not value:
                return None
            values.append(value)
        return values

    def _authorize(self, route: Route, event: dict[str, Any], request_id: str) -> Response | None:
        """None when the request may proceed (event updated with the authorizer context)."""
        authorizer = route.authorizer
        assert authorizer is not None
        identity = self._identity(authorizer, event)
        if identity is None:
            # A declared identity source is missing: API Gateway answers 401 without invoking.
            return _json_response(401, "Unauthorized", request_id)
        cache_key = (authorizer.name, tuple(identity))
        cached = self._auth_cache.get(cache_key) if authorizer.ttl_seconds and identity else None
        if cached is not None and cached.expires > time.monotonic():
            allowed, context = cached.allowed, cached.context
        else:
            auth_event = {
                "version": authorizer.payload_version,
                "type": "REQUEST",
                "routeArn": self._route_arn(route, event),
                "identitySource": identity,
                **{k: v for k, v in event.items() if k not in ("body", "isBase64Encoded", "version")},
            }
            payload, errored, _ = self._invoke(authorizer.function_logical_id, auth_event)
            if errored:
                LOG.error("authorizer %s failed: %s", authorizer.name, payload)
                return _json_response(500, "Internal Server Error", request_id)
            allowed, context = self._auth_decision(authorizer, json.loads(payload))
            if authorizer.ttl_seconds and identity:
                self._auth_cache[cache_key] = _CachedAuth(
                    time.monotonic() + authorizer.ttl_seconds, allowed, context
                )
        if not allowed:
            return _json_response(403, "Forbidden", request_id)
        event["requestContext"]["authorizer"] = {"lambda": context}
        return None

    @staticmethod
    def _auth_decision(authorizer: Authorizer, result: Any) -> tuple[bool, dict[str, Any]]:
        if not isinstance(result, dict):
            return False, {}
        context = result.get("context") or {}
        if authorizer.simple_responses:
            return result.get("isAuthorized") is True, context
        # IAM policy response: allowed when a statement allows execute-api:Invoke.
        statements = (result.get("policyDocument") or {}).get("Statement") or []
        effects = {str(s.get("Effect", "")).lower() for s in statements if isinstance(s, dict)}
        return ("allow" in effects and "deny" not in effects), context

    # --- integration ------------------------------------------------------------------------------
    def _integrate(self, route: Route, event: dict[str, Any], request_id: str) -> Response:
        outcome: dict[str, tuple[str, bool, str]] = {}

        def call() -> None:
            outcome["result"] = self._invoke(route.function_logical_id, event)

        worker = threading.Thread(target=call, name=f"apigw-{request_id}", daemon=True)
        worker.start()
        worker.join(self.integration_timeout)
        if "result" not in outcome:
            LOG.error("%s exceeded the %ss integration timeout", route.route_key, self.integration_timeout)
            return _json_response(503, "Service Unavailable", request_id)
        payload, errored, _ = outcome["result"]
        if errored:
            LOG.error("%s failed: %s", route.function_logical_id, payload)
            return _json_response(500, "Internal Server Error", request_id)
        try:
            return self._to_http(json.loads(payload), request_id)
        except (TypeError, ValueError) as exc:
            LOG.error("%s returned a malformed response: %s", route.function_logical_id, exc)
            return _json_response(500, "Internal Server Error", request_id)

    @staticmethod
    def _to_http(result: Any, request_id: str) -> Response:
        if not (isinstance(result, dict) and "statusCode" in result):
            # Payload 2.0 format inference: any other valid JSON is a 200 JSON body.
            body = result if isinstance(result, str) else json.dumps(result)
            return Response(
                body, status=200, headers={"content-type": "application/json", "apigw-requestid": request_id}
            )
        status = int(result["statusCode"])
        raw = result.get("body") or ""
        if not isinstance(raw, str):
            raise TypeError("body must be a string")
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        response = Response(data, status=status)
        response.headers.clear()
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(name, str(value))
        for cookie in result.get("cookies") or []:
            response.headers.add("set-cookie", cookie)
        if "content-type" not in response.headers:
            response.headers["content-type"] = "application/json"
        response.headers["apigw-requestid"] = request_id
        return response
