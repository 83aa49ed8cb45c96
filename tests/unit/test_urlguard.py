"""The SSRF guard: which URLs pass under each policy, and how safe_request/safe_stream talk to them.

No real DNS and no internet: names resolve through fake resolvers; the network tests use
an httpx MockTransport or a server on 127.0.0.1 under the development policy.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrelay.adapters.urlguard.rules import (
    CheckedUrl,
    FetchError,
    Resolver,
    ResponseTooLargeError,
    UrlPolicy,
    check_url,
)
from fluxrelay.adapters.urlguard.transport import safe_request, safe_stream
from fluxrelay.domain.errors import FluxRelayError, OutputUnavailableError, UnsafeUrlError
from fluxrelay.settings import UrlPolicyName

STRICT = UrlPolicy.strict()
DEV = UrlPolicy.development()
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

DNS: dict[str, list[str]] = {
    "public.example": [PUBLIC_V4],
    "public6.example": [PUBLIC_V6],
    "xn--bcher-kva.example": [PUBLIC_V4],
    "localhost": ["127.0.0.1", "::1"],
    "private.example": ["10.0.0.5"],
    "dual.example": [PUBLIC_V4, "10.0.0.5"],
    "dual6.example": [PUBLIC_V6, "fd00::5"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "linklocal.example": ["fe80::1%eth0"],
    "cgnat.example": ["100.64.1.1"],
    "loop-and-public.example": ["127.0.0.1", PUBLIC_V4],
    "garbage.example": ["not-an-ip"],
}


def fake_resolver(host: str) -> list[str]:
    return DNS.get(host, [])


def no_dns(host: str) -> list[str]:
    raise AssertionError(f"IP literals must not be resolved (asked for {host})")


class CountingResolver:
    """Answers `first` on the first lookup and `later` afterwards (a DNS-rebinding attacker)."""

    def __init__(self, first: list[str], later: list[str]) -> None:
        self.first, self.later, self.calls = first, later, 0

    def __call__(self, host: str) -> list[str]:
        self.calls += 1
        return self.first if self.calls == 1 else self.later


OK = None
HTTPS = "must use https"
CREDS = "must not contain credentials"
CHARS = "must not contain whitespace"
LOOPBACK = "loopback address (127.0.0.1)"
NONCANON = "non-canonical spelling of"

# (url, reason fragment under strict or OK, reason fragment under development or OK)
TABLE = [
    # --- schemes ---
    ("https://public.example/hook", OK, OK),
    ("HTTPS://PUBLIC.EXAMPLE/hook", OK, OK),
    ("https://public6.example/hook", OK, OK),
    ("https://public.example:8443/hook?x=1", OK, OK),
    ("http://public.example/hook", HTTPS, "http is only allowed to loopback"),
    ("ftp://public.example/file", HTTPS, HTTPS),
    ("file:///etc/passwd", HTTPS, HTTPS),
    ("gopher://public.example:70/_stats", HTTPS, HTTPS),
    ("javascript:alert(1)", HTTPS, HTTPS),
    ("data:text/plain;base64,aGk=", HTTPS, HTTPS),
    ("//public.example/hook", HTTPS, HTTPS),
    ("public.example/hook", HTTPS, HTTPS),
    ("https:public.example/hook", "not a valid absolute URL", "not a valid absolute URL"),
    ("", "is empty", "is empty"),
    # --- userinfo ---
    ("https://user:pw@public.example/", CREDS, CREDS),
    ("https://public.example@10.0.0.1/", CREDS, CREDS),
    ("https://@public.example/", CREDS, CREDS),
    # --- whitespace, control and odd characters ---
    ("https://public.example/a b", CHARS, CHARS),
    (" https://public.example/", CHARS, CHARS),
    ("https://public.example/\n", CHARS, CHARS),
    ("https://public.exam\tple/", CHARS, CHARS),
    ("https://public.example\x00.evil/", CHARS, CHARS),
    ("https://public.example/\u200b", CHARS, CHARS),
    ("https://public.example/\u202e", CHARS, CHARS),
    ("https://public.example\\@10.0.0.1/", CHARS, CHARS),
    ("https://pub%6cic.example/", "percent-encoded", "percent-encoded"),
    # --- host and port syntax ---
    ("https:///hook", "has no host", "has no host"),
    ("https://:443/hook", "has no host", "has no host"),
    ("https://public.example:0/", "port is not valid", "port is not valid"),
    ("https://public.example:65536/", "port is not valid", "port is not valid"),
    ("https://public.example:+443/", "port is not valid", "port is not valid"),
    ("https://public.example:/", "port is not valid", "port is not valid"),
    ("https://public.example:44x/", "port is not valid", "port is not valid"),
    ("https://::1/", "must be written in brackets", "must be written in brackets"),
    ("https://[127.0.0.1]/", "not a valid", "not a valid"),
    ("https://[::1]x/", "host is not valid", "host is not valid"),
    ("https://exa_mple..example/", "not a valid domain name", "not a valid domain name"),
    ("https://-bad.example/", "not a valid domain name", "not a valid domain name"),
    ("https://" + "a" * 64 + ".example/", "not a valid domain name", "not a valid domain name"),
    ("https://xn--zz.example/", "internationalised domain name", "internationalised domain name"),
    # --- loopback under each policy ---
    ("http://localhost:3000/hook", HTTPS, OK),
    ("https://localhost/hook", LOOPBACK, OK),
    ("http://localhost./hook", HTTPS, OK),
    ("https://localhost./hook", LOOPBACK, OK),
    ("http://127.0.0.1:8080/hook", HTTPS, OK),
    ("https://127.0.0.1/hook", "host is a loopback address", OK),
    ("https://127.255.0.9/", "loopback address (127.255.0.9)", OK),
    ("http://[::1]:8080/hook", HTTPS, OK),
    ("https://[::1]/hook", "loopback address (::1)", OK),
    ("https://loop-and-public.example/", LOOPBACK, OK),
    ("http://loop-and-public.example/", HTTPS, "http is only allowed to loopback"),
    # --- odd IPv4 spellings: judged by the real address, refused anyway when odd ---
    ("http://2130706433/", HTTPS, NONCANON),
    ("https://2130706433/", LOOPBACK, NONCANON),
    ("https://0177.0.0.1/", LOOPBACK, NONCANON),
    ("https://0x7f.1/", LOOPBACK, NONCANON),
    ("https://0X7F.0.0.1/", LOOPBACK, NONCANON),
    ("https://0x7f000001/", LOOPBACK, NONCANON),
    ("https://017700000001/", LOOPBACK, NONCANON),
    ("https://127.1/", LOOPBACK, NONCANON),
    ("https://127.0.1/", LOOPBACK, NONCANON),
    ("https://127.0.0.1./", LOOPBACK, NONCANON),
    ("https://8.8.8.8./", NONCANON, NONCANON),
    ("https://0x0a.0.0.1/", "private address (10.0.0.1)", "private address (10.0.0.1)"),
    ("https://0251.0376.0251.0376/", "metadata address (169.254.169.254)", "metadata address"),
    ("https://134744072/", "non-canonical spelling of 8.8.8.8; write 8.8.8.8", NONCANON),
    ("https://08.8.8.8/", "not a valid IPv4 address", "not a valid IPv4 address"),
    ("https://256.0.0.1/", "not a valid IPv4 address", "not a valid IPv4 address"),
    ("https://1.2.3.4.5/", "not a valid IPv4 address", "not a valid IPv4 address"),
    ("https://public.0x10/", "not a valid IPv4 address", "not a valid IPv4 address"),
    ("https://4294967296/", "not a valid IPv4 address", "not a valid IPv4 address"),
    # --- IDNA: mapped to ASCII first, then judged like any host ---
    ("https://bücher.example/", OK, OK),
    ("https://BÜCHER.example/", OK, OK),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", LOOPBACK, NONCANON),  # fullwidth digits
    ("https://127\u30020\u30020\u30021/", LOOPBACK, NONCANON),  # ideographic full stops
    ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", LOOPBACK, OK),  # fullwidth
    # --- IPv6 literals and zone ids ---
    ("https://[fe80::1%25eth0]/", "zone identifier", "zone identifier"),
    ("https://[::1%251]/", "zone identifier", "zone identifier"),
    ("https://[2606:4700:4700::1111]/", OK, OK),
    ("https://[0:0:0:0:0:0:0:1]/", "loopback address (::1)", OK),
    # --- IPv4 ranges (literals) ---
    ("https://8.8.8.8/", OK, OK),
    ("https://172.32.0.1/", OK, OK),
    ("https://10.0.0.5/", "host is a private address (10.0.0.5)", "private address"),
    ("https://172.16.0.1/", "private address", "private address"),
    ("https://172.31.255.255/", "private address", "private address"),
    ("https://192.168.1.1/", "private address", "private address"),
    ("https://169.254.1.1/", "link-local address", "link-local address"),
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata address", "cloud metadata address"),
    ("https://169.254.170.2/v2/credentials", "cloud metadata address", "cloud metadata address"),
    ("https://100.100.100.200/", "cloud metadata address", "cloud metadata address"),
    ("https://100.64.0.1/", "carrier-grade NAT", "carrier-grade NAT"),
    ("https://100.127.255.254/", "carrier-grade NAT", "carrier-grade NAT"),
    ("https://224.0.0.1/", "multicast address", "multicast address"),
    ("https://239.255.255.250/", "multicast address", "multicast address"),
    ("https://0.0.0.0/", "unspecified address", "unspecified address"),
    ("https://0.1.2.3/", "unspecified address", "unspecified address"),
    ("https://240.0.0.1/", "reserved address", "reserved address"),
    ("https://255.255.255.255/", "broadcast address", "broadcast address"),
    ("https://198.18.0.1/", "benchmarking address", "benchmarking address"),
    ("https://198.19.255.255/", "benchmarking address", "benchmarking address"),
    ("https://192.0.2.1/", "documentation address", "documentation address"),
    ("https://198.51.100.7/", "documentation address", "documentation address"),
    ("https://203.0.113.9/", "documentation address", "documentation address"),
    ("https://192.0.0.9/", "reserved address", "reserved address"),
    # --- IPv6 ranges (literals) ---
    ("https://[::]/", "unspecified address", "unspecified address"),
    ("https://[fe80::1]/", "link-local address", "link-local address"),
    ("https://[fc00::1]/", "unique-local", "unique-local"),
    ("https://[fd12:3456::1]/", "unique-local", "unique-local"),
    ("https://[fd00:ec2::254]/", "cloud metadata address", "cloud metadata address"),
    ("https://[fec0::1]/", "site-local address", "site-local address"),
    ("https://[ff02::1]/", "multicast address", "multicast address"),
    ("https://[2001:db8::1]/", "documentation address", "documentation address"),
    ("https://[3fff::1]/", "documentation address", "documentation address"),
    ("https://[100::1]/", "reserved address", "reserved address"),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo address", "Teredo address"),
    # --- IPv4 inside IPv6: the embedded address is judged ---
    ("https://[::ffff:10.0.0.1]/", "IPv4-mapped IPv6 address", "embedding a private address (10.0.0.1)"),
    ("https://[::ffff:7f00:1]/", "embedding a loopback address (127.0.0.1)", "IPv4-mapped"),
    ("https://[::ffff:169.254.169.254]/", "embedding a cloud metadata", "embedding a cloud metadata"),
    ("https://[::ffff:8.8.8.8]/", "use the IPv4 address 8.8.8.8", "use the IPv4 address 8.8.8.8"),
    ("https://[::ffff:0:a00:1]/", "IPv4-translated", "embedding a private address (10.0.0.1)"),
    ("https://[::10.0.0.1]/", "IPv4-compatible IPv6 address", "embedding a private address"),
    ("https://[::127.0.0.1]/", "embedding a loopback address", "IPv4-compatible"),
    ("https://[64:ff9b::10.0.0.1]/", "NAT64 IPv6 address", "embedding a private address (10.0.0.1)"),
    ("https://[64:ff9b::7f00:1]/", "embedding a loopback address", "NAT64"),
    ("https://[64:ff9b::8.8.8.8]/", OK, OK),
    ("https://[64:ff9b:1::1]/", "reserved address", "reserved address"),
    ("https://[2002:a00:1::1]/", "6to4 IPv6 address", "embedding a private address (10.0.0.1)"),
    ("https://[2002:7f00:1::1]/", "embedding a loopback address", "6to4"),
    ("https://[2002:808:808::1]/", "use the IPv4 address 8.8.8.8", "use the IPv4 address 8.8.8.8"),
    # --- names: every resolved address is judged ---
    ("https://private.example/", "host private.example resolves to a private address (10.0.0.5)", "private"),
    ("https://dual.example/", "resolves to a private address (10.0.0.5)", "private address (10.0.0.5)"),
    ("https://dual6.example/", "resolves to a private (unique-local) address (fd00::5)", "unique-local"),
    ("https://metadata.example/", "cloud metadata address (169.254.169.254)", "cloud metadata"),
    ("https://mapped.example/", "embedding a private address (10.0.0.1)", "IPv4-mapped"),
    ("https://linklocal.example/", "link-local address (fe80::1)", "link-local"),
    ("https://cgnat.example/", "carrier-grade NAT", "carrier-grade NAT"),
    ("https://nowhere.example/", "does not resolve", "does not resolve"),
    ("https://garbage.example/", "not an IP address", "not an IP address"),
]


@pytest.mark.parametrize(("url", "strict", "dev"), TABLE, ids=[repr(row[0])[:60] for row in TABLE])
@pytest.mark.parametrize("policy_name", ["strict", "development"])
def test_check_url_table(url: str, strict: str | None, dev: str | None, policy_name: str) -> None:
    # Given the policy and the expected outcome for it
    expected = strict if policy_name == "strict" else dev
    policy = UrlPolicy.from_name(policy_name)
    if expected is OK:
        # When / Then
        checked = check_url(url, policy, resolver=fake_resolver)
        assert checked.addresses
        assert checked.scheme in ("http", "https")
    else:
        with pytest.raises(UnsafeUrlError) as caught:
            check_url(url, policy, resolver=fake_resolver)
        assert expected in caught.value.message
        assert caught.value.http_status == 400


def test_refusal_messages_never_echo_path_query_or_credentials() -> None:
    for url in (
        "https://private.example/hooks/tok_SECRET?token=SECRET",
        "https://user:SECRET@public.example/",
        "http://public.example/?key=SECRET",
        "https://10.0.0.1/SECRET",
    ):
        with pytest.raises(UnsafeUrlError) as caught:
            check_url(url, STRICT, resolver=fake_resolver)
        assert "SECRET" not in str(caught.value)


def test_label_names_the_url_in_messages() -> None:
    with pytest.raises(UnsafeUrlError, match=r"^webhook URL must use https$"):
        check_url("http://public.example/", STRICT, resolver=fake_resolver, label="webhook URL")


def test_checked_url_is_normalised_and_keeps_resolver_order_without_duplicates() -> None:
    # Given a name with several addresses, one repeated
    def resolver(host: str) -> list[str]:
        return [PUBLIC_V6, PUBLIC_V4, PUBLIC_V6]

    # When
    checked = check_url("HTTPS://Bücher.Example.:8443/a/b%20c?x=1&y=2#frag", STRICT, resolver=resolver)

    # Then
    assert checked == CheckedUrl(
        url="https://xn--bcher-kva.example:8443/a/b%20c?x=1&y=2",
        scheme="https",
        host="xn--bcher-kva.example",
        port=8443,
        path_and_query="/a/b%20c?x=1&y=2",
        addresses=(PUBLIC_V6, PUBLIC_V4),
    )
    assert checked.host_header == "xn--bcher-kva.example:8443"
    assert checked.pinned_url(PUBLIC_V6) == f"https://[{PUBLIC_V6}]:8443/a/b%20c?x=1&y=2"
    with pytest.raises(ValueError, match="not vetted"):
        checked.pinned_url("127.0.0.1")


def test_default_port_and_path() -> None:
    checked = check_url("https://public.example", STRICT, resolver=fake_resolver)
    assert (checked.port, checked.path_and_query, checked.host_header) == (443, "/", "public.example")
    ipv6 = check_url("https://[2606:4700:4700::1111]:444/", STRICT, resolver=no_dns)
    assert ipv6.host_header == "[2606:4700:4700::1111]:444"
    assert ipv6.addresses == ("2606:4700:4700::1111",)


def test_ip_literals_are_never_resolved() -> None:
    assert check_url("https://8.8.8.8/", STRICT, resolver=no_dns).addresses == ("8.8.8.8",)
    with pytest.raises(UnsafeUrlError, match="loopback"):
        check_url("https://0x7f.1/", STRICT, resolver=no_dns)


def test_allowed_ports() -> None:
    policy = UrlPolicy(allowed_ports=frozenset({443}))
    assert check_url("https://public.example/", policy, resolver=fake_resolver).port == 443
    assert check_url("https://public.example:443/", policy, resolver=fake_resolver).port == 443
    with pytest.raises(UnsafeUrlError, match="port 8443 is not allowed"):
        check_url("https://public.example:8443/", policy, resolver=fake_resolver)


def test_policies_from_names() -> None:
    assert UrlPolicy.from_name("strict") == STRICT == UrlPolicy()
    assert UrlPolicy.from_name(UrlPolicyName.DEVELOPMENT) == DEV
    assert DEV.allow_http_loopback
    assert not STRICT.allow_http_loopback
    assert STRICT.allowed_ports is None
    with pytest.raises(ValueError, match="unknown URL policy"):
        UrlPolicy.from_name("lax")
    with pytest.raises(AttributeError):
        STRICT.allow_http_loopback = True  # type: ignore[misc]


def test_default_resolver_is_getaddrinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given getaddrinfo answering a private address
    asked: list[object] = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    # When / Then
    with pytest.raises(UnsafeUrlError, match=r"resolves to a private address \(10\.0\.0\.7\)"):
        check_url("https://internal.example/", STRICT)
    assert asked == ["internal.example"]


@pytest.mark.parametrize(
    ("errno", "error", "retryable"),
    [(socket.EAI_NONAME, UnsafeUrlError, False), (socket.EAI_AGAIN, FetchError, True)],
)
def test_dns_failures(
    monkeypatch: pytest.MonkeyPatch, errno: int, error: type[FluxRelayError], retryable: bool
) -> None:
    def getaddrinfo(*args: object, **kwargs: object) -> list[tuple]:
        raise socket.gaierror(errno, "lookup failed")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(error) as caught:
        check_url("https://nowhere.example/", STRICT)
    assert caught.value.retryable is retryable


# --- properties -------------------------------------------------------------------------------
# The documented rule: refused iff not `is_global`, or in a range 3.11's `is_global` misses or that
# we refuse on purpose (multicast, reserved, IPv4 hidden in IPv6 other than public NAT64...).
EXTRA_V4 = [ipaddress.ip_network(n) for n in ("224.0.0.0/4", "192.0.0.0/24", "192.88.99.0/24")]
EXTRA_V6 = [
    ipaddress.ip_network(n)
    for n in (
        "ff00::/8",
        "fec0::/10",
        "3fff::/20",
        "5f00::/16",
        "64:ff9b:1::/48",
        "::ffff:0:0/96",
        "::ffff:0:0:0/96",
        "::/96",
        "2002::/16",
        "2001::/32",
    )
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def v4_refused(ip: ipaddress.IPv4Address) -> bool:
    return not ip.is_global or any(ip in net for net in EXTRA_V4)


def expected_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return v4_refused(ip)
    if ip in NAT64:
        return v4_refused(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return not ip.is_global or any(ip in net for net in EXTRA_V6)


def outcome(url: str, resolver: Resolver) -> bool:
    try:
        check_url(url, STRICT, resolver=resolver)
    except UnsafeUrlError:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(st.ip_addresses())
def test_strict_refuses_exactly_the_non_public_addresses(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    literal = f"https://{ip}/" if ip.version == 4 else f"https://[{ip}]/"
    expected = expected_refused(ip)
    # As a literal and as the address of a name, the verdict is the same.
    assert outcome(literal, no_dns) is expected
    assert outcome("https://some.example/", lambda host: [str(ip)]) is expected
    # A single bad address among good ones spoils the name.
    assert outcome("https://some.example/", lambda host: [PUBLIC_V4, str(ip)]) is expected


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=4), st.sampled_from(["decimal", "hex", "octal", "short"]))
def test_odd_ipv4_spellings_are_always_refused_and_name_the_real_address(
    ip: ipaddress.IPv4Address, spelling: str
) -> None:
    octets = ip.packed
    host = {
        "decimal": str(int(ip)),
        "hex": hex(int(ip)),
        "octal": ".".join(f"0{b:o}" for b in octets),
        "short": f"{octets[0]}.{int.from_bytes(octets[1:], 'big')}",
    }[spelling]
    if host == str(ip):  # e.g. "0.0" is not a spelling of its own... keep the property honest
        return
    with pytest.raises(UnsafeUrlError) as caught:
        check_url(f"https://{host}/", STRICT, resolver=no_dns)
    assert f"{ip})" in caught.value.message or f"write {ip}" in caught.value.message


# --- safe_request with a mock transport -------------------------------------------------------
class Recorder:
    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.respond = respond or (lambda request: httpx.Response(200, content=b"ok"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def test_safe_request_connects_to_the_vetted_address_only_dns_rebinding() -> None:
    # Given a name that answers a public address first and loopback on any later lookup
    resolver = CountingResolver(first=[PUBLIC_V4], later=["127.0.0.1"])
    recorder = Recorder()

    # When
    response = safe_request(
        "POST",
        "https://hook.example/in?sig=abc",
        STRICT,
        content=b'{"a":1}',
        headers={"Host": "evil.example", "Content-Type": "application/json"},
        client=recorder.client(),
        resolver=resolver,
    )

    # Then the one request went to the vetted IP, named the real host, and DNS was asked once
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response.address == PUBLIC_V4
    assert resolver.calls == 1
    [sent] = recorder.requests
    assert (sent.url.scheme, sent.url.host, sent.url.port or 443) == ("https", PUBLIC_V4, 443)
    assert sent.url.raw_path == b"/in?sig=abc"
    assert sent.headers["host"] == "hook.example"
    assert sent.extensions["sni_hostname"] == "hook.example"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept-encoding"] == "identity"
    assert sent.content == b'{"a":1}'


def test_safe_request_pins_ipv6_and_keeps_the_port_in_host() -> None:
    recorder = Recorder()
    safe_request(
        "GET", "https://public6.example:8443/x", STRICT, client=recorder.client(), resolver=fake_resolver
    )
    [sent] = recorder.requests
    assert sent.url.host == PUBLIC_V6
    assert sent.url.port == 8443
    assert sent.headers["host"] == "public6.example:8443"


def test_safe_request_to_ip_literal_sends_no_sni_override() -> None:
    recorder = Recorder()
    safe_request("GET", "https://8.8.8.8/", STRICT, client=recorder.client(), resolver=no_dns)
    [sent] = recorder.requests
    assert "sni_hostname" not in sent.extensions
    assert sent.headers["host"] == "8.8.8.8"


def test_safe_request_refuses_before_any_network() -> None:
    recorder = Recorder()
    with pytest.raises(UnsafeUrlError, match="private"):
        safe_request(
            "POST", "https://dual.example/", STRICT, client=recorder.client(), resolver=fake_resolver
        )
    assert recorder.requests == []


def test_redirect_is_returned_not_followed() -> None:
    recorder = Recorder(lambda r: httpx.Response(302, headers={"Location": "http://169.254.169.254/"}))
    response = safe_request(
        "GET", "https://public.example/", STRICT, client=recorder.client(), resolver=fake_resolver
    )
    assert response.status_code == 302
    assert response.headers["location"] == "http://169.254.169.254/"
    assert len(recorder.requests) == 1


def test_next_vetted_address_is_tried_when_connecting_fails() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_V6:
            raise httpx.ConnectError("unreachable", request=request)
        return httpx.Response(204)

    recorder = Recorder(respond)
    response = safe_request(
        "POST",
        "https://h.example/",
        STRICT,
        client=recorder.client(),
        resolver=lambda h: [PUBLIC_V6, PUBLIC_V4],
    )
    assert response.status_code == 204
    assert response.address == PUBLIC_V4
    assert [r.url.host for r in recorder.requests] == [PUBLIC_V6, PUBLIC_V4]


class Body(httpx.SyncByteStream):
    """A response body that counts how much of it was pulled."""

    def __init__(self, chunk: bytes, count: int | None) -> None:
        self.chunk, self.count, self.pulled = chunk, count, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.count is None or self.pulled < self.count:
            self.pulled += 1
            yield self.chunk


def test_declared_content_length_over_cap_is_refused_before_reading() -> None:
    body = Body(b"x" * 100, 100)
    recorder = Recorder(lambda r: httpx.Response(200, headers={"Content-Length": "10000"}, stream=body))
    with pytest.raises(ResponseTooLargeError, match="10000 bytes, more than 1000"):
        safe_request(
            "GET",
            "https://public.example/",
            STRICT,
            max_bytes=1000,
            client=recorder.client(),
            resolver=fake_resolver,
        )
    assert body.pulled == 0


def test_endless_body_without_content_length_is_cut_at_the_cap() -> None:
    body = Body(b"x" * 100, None)
    recorder = Recorder(lambda r: httpx.Response(200, stream=body))
    with pytest.raises(ResponseTooLargeError) as caught:
        safe_request(
            "GET",
            "https://public.example/",
            STRICT,
            max_bytes=1000,
            client=recorder.client(),
            resolver=fake_resolver,
        )
    assert isinstance(caught.value, OutputUnavailableError)
    assert body.pulled == 11


def test_body_exactly_at_the_cap_is_accepted() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, stream=Body(b"x" * 100, 10)))
    response = safe_request(
        "GET",
        "https://public.example/",
        STRICT,
        max_bytes=1000,
        client=recorder.client(),
        resolver=fake_resolver,
    )
    assert len(response.content) == 1000


@pytest.mark.parametrize(
    ("exc", "retryable", "fragment"),
    [
        (httpx.ReadTimeout, True, "timed out"),
        (httpx.ConnectTimeout, True, "timed out"),
        (httpx.ConnectError, True, "could not connect"),
        (httpx.RemoteProtocolError, True, "failed"),
        (httpx.LocalProtocolError, False, "failed"),
    ],
)
def test_network_errors_become_fetch_errors(exc: type, retryable: bool, fragment: str) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc("boom with secret ?token=SECRET", request=request)

    with pytest.raises(FetchError) as caught:
        safe_request(
            "GET",
            "https://public.example/?token=SECRET",
            STRICT,
            client=Recorder(respond).client(),
            resolver=fake_resolver,
        )
    assert caught.value.retryable is retryable
    assert fragment in caught.value.message
    assert "SECRET" not in caught.value.message
    assert isinstance(caught.value, FluxRelayError)


# --- safe_request / safe_stream against a real local server (development policy) --------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        release = self.server.release
        if self.path == "/ok":
            self._send(200, b"hello")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/target")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/target":
            self._send(200, b"you should not be here")
        elif self.path.startswith("/sized/"):
            self._send(200, b"x" * int(self.path.rsplit("/", 1)[1]))
        elif self.path in ("/endless", "/drip"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * (65536 if self.path == "/endless" else 1)
            try:
                while not release.is_set():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    if self.path == "/drip":
                        release.wait(0.05)
            except OSError:  # the client hung up: the point of the test
                return
        elif self.path == "/hang":
            release.wait(30)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, str]] = []
        self.release = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]


def serve(server: LocalServer) -> Iterator[LocalServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def local() -> Iterator[LocalServer]:
    yield from serve(LocalServer())


def test_real_request_goes_to_the_vetted_loopback_address_without_second_lookup(local: LocalServer) -> None:
    # Given a rebinding resolver; "rebind.test" does not exist in real DNS, so any second lookup by
    # httpx would fail the request outright
    resolver = CountingResolver(first=["127.0.0.1"], later=["10.9.9.9"])

    # When
    response = safe_request("GET", f"http://rebind.test:{local.port}/ok", DEV, resolver=resolver)

    # Then
    assert (response.status_code, response.content) == (200, b"hello")
    assert resolver.calls == 1
    assert local.seen == [("/ok", f"rebind.test:{local.port}")]


def test_strict_policy_never_reaches_a_local_server(local: LocalServer) -> None:
    for url in (f"http://127.0.0.1:{local.port}/ok", f"https://localhost:{local.port}/ok"):
        with pytest.raises(UnsafeUrlError):
            safe_request("GET", url, STRICT, resolver=fake_resolver)
    assert local.seen == []


def test_real_redirect_is_not_followed(local: LocalServer) -> None:
    response = safe_request("GET", f"http://localhost:{local.port}/redirect", DEV, resolver=fake_resolver)
    assert response.status_code == 302
    assert response.headers["location"] == "/target"
    assert [path for path, _ in local.seen] == ["/redirect"]


def test_real_body_cap_with_content_length(local: LocalServer) -> None:
    url = f"http://localhost:{local.port}/sized/2000"
    assert len(safe_request("GET", url, DEV, max_bytes=2000, resolver=fake_resolver).content) == 2000
    with pytest.raises(ResponseTooLargeError, match="2000 bytes, more than 1999"):
        safe_request("GET", url, DEV, max_bytes=1999, resolver=fake_resolver)


def test_real_body_cap_without_content_length(local: LocalServer) -> None:
    with pytest.raises(ResponseTooLargeError, match="larger than 100000 bytes"):
        safe_request(
            "GET", f"http://localhost:{local.port}/endless", DEV, max_bytes=100_000, resolver=fake_resolver
        )


def test_safe_stream_yields_chunks_under_the_cap(local: LocalServer) -> None:
    # Given a body bigger than one read
    with safe_stream(
        "GET", f"http://localhost:{local.port}/sized/300000", DEV, resolver=fake_resolver
    ) as stream:
        # When
        chunks = list(stream)
    # Then
    assert stream.status_code == 200
    assert stream.headers["content-length"] == "300000"
    assert len(chunks) > 1
    assert sum(map(len, chunks)) == 300_000


def test_safe_stream_aborts_mid_body_when_the_cap_is_passed(local: LocalServer) -> None:
    # Given an endless body read chunk by chunk
    received: list[int] = []

    def consume() -> None:
        url = f"http://localhost:{local.port}/endless"
        with safe_stream("GET", url, DEV, max_bytes=1_000_000, resolver=fake_resolver) as stream:
            for chunk in stream:
                received.append(len(chunk))

    # When / Then: chunks flow until the cap, then the stream aborts
    with pytest.raises(ResponseTooLargeError):
        consume()
    assert 0 < sum(received) <= 1_000_000


def test_server_that_never_answers_times_out(local: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out") as caught:
        safe_request("GET", f"http://localhost:{local.port}/hang", DEV, timeout=0.3, resolver=fake_resolver)
    assert caught.value.retryable
    assert time.monotonic() - started < 5


def test_dripping_server_is_cut_off_by_the_total_time_cap(local: LocalServer) -> None:
    # Each byte arrives well within the read timeout; only the total cap can stop this.
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 0\.5s") as caught:
        safe_request("GET", f"http://localhost:{local.port}/drip", DEV, timeout=0.5, resolver=fake_resolver)
    assert caught.value.retryable
    assert time.monotonic() - started < 5


def test_connection_refused_is_a_retryable_fetch_error() -> None:
    # Given a port nobody listens on (bound, then closed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="could not connect") as caught:
        safe_request("GET", f"http://localhost:{port}/", DEV, resolver=fake_resolver)
    assert caught.value.retryable


# --- TLS: connect to the IP, verify the certificate for the real name -------------------------
def make_certificates(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    """A throwaway CA and a leaf certificate for `name` (returns cert file, key file, CA PEM)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fluxrelay test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def tls_local(tmp_path: Path) -> Iterator[tuple[LocalServer, httpx.Client, list[str]]]:
    cert_file, key_file, ca_pem = make_certificates(tmp_path, "fluxrelay.test")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    sni_seen: list[str] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni_seen.append(name)
    server = LocalServer()
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    client_ctx = ssl.create_default_context(cadata=ca_pem.decode())
    with httpx.Client(verify=client_ctx) as client:
        for running in serve(server):
            yield running, client, sni_seen


def test_tls_to_the_pinned_ip_verifies_the_certificate_for_the_real_name(
    tls_local: tuple[LocalServer, httpx.Client, list[str]],
) -> None:
    server, client, sni_seen = tls_local
    resolver = CountingResolver(first=["127.0.0.1"], later=["10.9.9.9"])

    response = safe_request(
        "GET", f"https://fluxrelay.test:{server.port}/ok", DEV, client=client, resolver=resolver
    )

    assert (response.status_code, response.content) == (200, b"hello")
    assert sni_seen == ["fluxrelay.test"]
    assert server.seen == [("/ok", f"fluxrelay.test:{server.port}")]
    assert resolver.calls == 1


def test_tls_certificate_for_another_name_is_refused(
    tls_local: tuple[LocalServer, httpx.Client, list[str]],
) -> None:
    server, client, _ = tls_local
    with pytest.raises(FetchError, match="certificate") as caught:
        safe_request(
            "GET",
            f"https://impostor.test:{server.port}/ok",
            DEV,
            client=client,
            resolver=lambda h: ["127.0.0.1"],
        )
    assert not caught.value.retryable
    assert server.seen == []
