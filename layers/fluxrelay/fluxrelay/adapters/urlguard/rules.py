"""The SSRF guard's rules: which URLs we accept and which addresses we may talk to.

Every URL a caller or WaveSpeed gives us is judged here: the request models check the rules that
need no DNS lookup (`url_problem`) for URLs the upstream fetches itself, and `check_url` vets a
URL we are about to fetch or post to, resolving its host once and refusing it if *any* address
is not public (private, loopback, link-local, CGNAT, metadata, multicast, reserved,
documentation, IPv4 hidden inside IPv6 ...). The transport (`transport.py`) then connects to the
vetted address itself.

Parsing is strict: https only; no credentials, whitespace, control characters, backslashes, '..'
path segments or odd host encodings such as `0x7f.1`, `2130706433`, `[::1%25eth0]`. The
`development` policy additionally allows http and https to loopback (127.0.0.0/8, ::1), so a
developer can receive webhooks on their laptop; deployed stacks use `strict`.

Written here rather than taken from a library: the SSRF filters on PyPI check a URL or patch
`requests`, none pins the vetted address on an httpx connection while keeping TLS verification on
the real name, which is what closes DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import unquote, urlsplit

from fluxrelay.domain.errors import FluxRelayError, OutputUnavailableError, UnsafeUrlError

__all__ = [
    "MAX_URL_LENGTH",
    "CheckedUrl",
    "FetchError",
    "Resolver",
    "ResponseTooLargeError",
    "UrlPolicy",
    "check_url",
    "system_resolver",
    "url_problem",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
# A resolver maps an ASCII host name to its addresses (strings), in preference order.
Resolver: TypeAlias = Callable[[str], Iterable[str]]

# One cap for every URL, whoever gave it: callers (images, LoRAs, webhooks) and the upstream (outputs).
MAX_URL_LENGTH: Final = 2048
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_HOST_LABEL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


# --- errors -----------------------------------------------------------------------------------
class FetchError(FluxRelayError):
    """The request to a vetted URL failed on the network (timeout, refused, reset, bad TLS).

    `retryable` is True for timeouts and connection failures, False for failures that repeating
    will not fix (certificate mismatch, a malformed request).
    """

    http_status = 502
    retryable = True

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ResponseTooLargeError(OutputUnavailableError):
    """The response body is larger than the caller's `max_bytes` (announced or actually sent)."""


# --- policy -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What `check_url` accepts beyond https to public addresses."""

    # Development only: also accept http:// and https:// to loopback (127.0.0.0/8, ::1).
    allow_http_loopback: bool = False
    # None = any port; otherwise the only ports accepted.
    allowed_ports: frozenset[int] | None = None

    @classmethod
    def strict(cls) -> UrlPolicy:
        return cls()

    @classmethod
    def development(cls) -> UrlPolicy:
        return cls(allow_http_loopback=True)

    @classmethod
    def from_name(cls, name: str) -> UrlPolicy:
        """Map `Settings.url_policy` (`UrlPolicyName`, a str enum) to a policy."""
        key = str(name).strip().lower()
        if key == "strict":
            return cls.strict()
        if key == "development":
            return cls.development()
        raise ValueError(f"unknown URL policy {name!r} (expected 'strict' or 'development')")


# --- checked URL ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL that passed `check_url`, with the addresses it was vetted against."""

    url: str  # normalised: scheme://host[:port]/path?query (ASCII host, no fragment)
    scheme: str
    host: str  # lowercase ASCII (IDNA) name or canonical IP, no brackets, no trailing dot
    port: int
    path_and_query: str  # always starts with "/"
    addresses: tuple[str, ...]  # vetted IPs, resolver order, no duplicates

    @property
    def is_ip_literal(self) -> bool:
        return _parse_ip(self.host) is not None

    @property
    def host_header(self) -> str:
        """The `Host` header value (brackets for IPv6, port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS[self.scheme]:
            host = f"{host}:{self.port}"
        return host

    def pinned_url(self, address: str) -> str:
        """This URL with its host replaced by one of the vetted addresses (what we connect to)."""
        if address not in self.addresses:
            raise ValueError("address was not vetted for this URL")
        netloc = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{netloc}:{self.port}{self.path_and_query}"


def system_resolver(host: str) -> list[str]:
    """`socket.getaddrinfo` as a `Resolver` (TCP results, in the system's preference order)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# --- address rules ----------------------------------------------------------------------------
def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Ordered: the first matching category names the refusal. Everything not global per `ipaddress`
# is refused as well (last rule); the explicit lists exist because `is_global` differs between
# Python versions (3.11 calls multicast, fec0::/10, 3fff::/20 ... "global") and to give clear reasons.
_V4_RULES: Final = (
    ("cloud metadata", _nets("169.254.169.254/32", "169.254.170.2/32", "169.254.170.23/32")),
    ("cloud metadata", _nets("100.100.100.200/32")),
    ("unspecified", _nets("0.0.0.0/8")),
    ("loopback", _nets("127.0.0.0/8")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", _nets("169.254.0.0/16")),
    ("carrier-grade NAT (shared)", _nets("100.64.0.0/10")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
    ("benchmarking", _nets("198.18.0.0/15")),
    ("multicast", _nets("224.0.0.0/4")),
    ("broadcast", _nets("255.255.255.255/32")),
    ("reserved", _nets("240.0.0.0/4", "192.0.0.0/24", "192.88.99.0/24")),
)
_V6_RULES: Final = (
    ("cloud metadata", _nets("fd00:ec2::254/128")),
    ("unspecified", _nets("::/128")),
    ("loopback", _nets("::1/128")),
    ("private (unique-local)", _nets("fc00::/7")),
    ("link-local", _nets("fe80::/10")),
    ("site-local", _nets("fec0::/10")),
    ("multicast", _nets("ff00::/8")),
    ("documentation", _nets("2001:db8::/32", "3fff::/20")),
    ("Teredo", _nets("2001::/32")),
    ("reserved", _nets("100::/64", "64:ff9b:1::/48", "5f00::/16", "2001::/23")),
)
_V4_MAPPED: Final = ipaddress.ip_network("::ffff:0:0/96")
_V4_TRANSLATED: Final = ipaddress.ip_network("::ffff:0:0:0/96")
_V4_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR: Final = ipaddress.ip_network("2002::/16")
_EMBEDDING_V4: Final = (
    (_V4_MAPPED, "IPv4-mapped"),
    (_V4_TRANSLATED, "IPv4-translated"),
    (_V4_COMPATIBLE, "IPv4-compatible"),
    (_SIX_TO_FOUR, "6to4"),
    (_NAT64, "NAT64"),
)
_LOOPBACK: Final = _nets("127.0.0.0/8", "::1/128")


def _article(phrase: str) -> str:
    return f"an {phrase}" if phrase[0].lower() in "aeiou" else f"a {phrase}"


def _v4_category(ip: ipaddress.IPv4Address) -> str | None:
    for category, nets in _V4_RULES:
        if any(ip in net for net in nets):
            return category
    return None if ip.is_global else "non-public"


def _v6_category(ip: ipaddress.IPv6Address) -> str | None:
    for category, nets in _V6_RULES:
        if any(ip in net for net in nets):
            return category
    return None if ip.is_global else "non-public"


def _address_problem(ip: IPAddress) -> str | None:
    """Why this address is not a public unicast address we may talk to (a phrase naming the
    address, e.g. "a private address (10.0.0.5)"); None if it is one."""
    if isinstance(ip, ipaddress.IPv4Address):
        category = _v4_category(ip)
        return None if category is None else f"{_article(category)} address ({ip})"
    if ip.scope_id is not None:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    if int(ip) > 1:  # :: and ::1 are in ::/96 but are not IPv4-compatible forms
        for net, kind in _EMBEDDING_V4:
            if ip not in net:
                continue
            # IPv4 hidden in IPv6: judge the embedded address. Mapped, translated, compatible and
            # 6to4 forms are refused even when it is public: nothing legitimate needs them, and
            # how they are routed depends on the host's network stack.
            embedded = ip.sixtofour if kind == "6to4" else ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            assert embedded is not None
            inner = _v4_category(embedded)
            if inner is not None:
                return (
                    f"{_article(kind)} IPv6 address ({ip}) embedding {_article(inner)} address ({embedded})"
                )
            if kind == "NAT64":
                # 64:ff9b::/96 is how a DNS64/NAT64 network reaches public IPv4 hosts: legitimate.
                return None
            return f"{_article(kind)} IPv6 address ({ip}); use the IPv4 address {embedded} directly"
    category = _v6_category(ip)
    return None if category is None else f"{_article(category)} address ({ip})"


def _is_loopback(ip: IPAddress) -> bool:
    return any(ip.version == net.version and ip in net for net in _LOOPBACK)


# --- parsing ----------------------------------------------------------------------------------
def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_ipv4_number(part: str) -> int | None:
    """One part of a WHATWG/inet_aton IPv4 host: decimal, 0x-hex or 0-octal; None if not a number."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
        if digits == "":
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    try:
        return int(digits, base) if digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


def _parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Decode the IPv4 spellings browsers and `inet_aton` accept (`127.1`, `0x7f.1`, `2130706433`,
    `0177.0.0.1`), so they are judged by the address they really name.

    Returns None when the host is a domain name (its last label is not a number), as the WHATWG URL
    standard does; raises `ValueError` for a host that looks numeric but is not a valid address.
    """
    parts = host.split(".")
    last = parts[-1]
    if last == "" or (not (last.isascii() and last.isdigit()) and _parse_ipv4_number(last) is None):
        return None
    if len(parts) > 4 or "" in parts:
        raise ValueError(host)
    numbers = [_parse_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        raise ValueError(host)
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ValueError(host)
    total = values[-1]
    for index, value in enumerate(values[:-1]):
        total += value * 256 ** (3 - index)
    return ipaddress.IPv4Address(total)


class _RefusedError(Exception):
    """A URL broke a rule; `reason` completes a sentence that starts with the URL's label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _normalise_name(raw: str) -> str:
    """Lowercase ASCII form of a host name (IDNA/UTS-46 for non-ASCII), without a trailing dot."""
    if "%" in raw:
        raise _RefusedError("host must not be percent-encoded")
    if raw.isascii():
        name = raw.lower()
    else:
        import idna  # only for non-ASCII hosts: its tables cost a cold start nothing otherwise

        try:
            name = idna.encode(raw, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise _RefusedError("host is not a valid internationalised domain name") from None
    name = name.removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or any(not 0 < len(part) <= 63 for part in labels):
        raise _RefusedError("host is not a valid domain name")
    if any(not set(part) <= _HOST_LABEL_CHARS or part[0] == "-" or part[-1] == "-" for part in labels):
        raise _RefusedError("host is not a valid domain name")
    if any(part.startswith("xn--") for part in labels):
        import idna

        try:
            idna.decode(name)
        except idna.IDNAError:
            raise _RefusedError("host is not a valid internationalised domain name") from None
    return name


def _split_netloc(netloc: str) -> tuple[str, bool, int | None]:
    """(host text, bracketed?, explicit port or None) from an authority without userinfo."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _RefusedError("host is not valid")
        host, rest, bracketed = netloc[1:end], netloc[end + 1 :], True
        if rest and not rest.startswith(":"):
            raise _RefusedError("host is not valid")
        port_text = rest[1:] if rest else None
    else:
        if netloc.count(":") > 1:
            raise _RefusedError("IPv6 addresses must be written in brackets")
        host, colon, port_text_or_empty = netloc.partition(":")
        bracketed = False
        port_text = port_text_or_empty if colon else None
    if port_text is None:
        return host, bracketed, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) <= 65535:
        raise _RefusedError("port is not valid")
    return host, bracketed, int(port_text)


def _unsafe_char(url: str) -> bool:
    # Control characters, every kind of whitespace, format characters (zero-width, bidi overrides)
    # and backslashes (which browsers and some libraries read as "/") have no place in a URL we use.
    return any(
        ch == "\\" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Cs")
        for ch in url
    )


@dataclass(frozen=True, slots=True)
class _Parsed:
    scheme: str
    host: str
    literal: IPAddress | None
    explicit_port: int | None
    port: int
    path_and_query: str


def _parse(url: str, policy: UrlPolicy) -> _Parsed:
    """Every rule that needs no DNS lookup; raises `_RefusedError`."""
    if not isinstance(url, str) or not url:
        raise _RefusedError("is empty")
    if len(url) > MAX_URL_LENGTH:
        raise _RefusedError(f"must be at most {MAX_URL_LENGTH} characters long")
    if _unsafe_char(url):
        raise _RefusedError("must not contain whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _RefusedError("is not a valid URL") from None
    scheme = parts.scheme
    if scheme not in _DEFAULT_PORTS:
        got = f" (got {scheme}:)" if scheme and scheme.isascii() and scheme.isalnum() else ""
        raise _RefusedError(f"must use https{got}")
    if scheme == "http" and not policy.allow_http_loopback:
        raise _RefusedError("must use https")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise _RefusedError("is not a valid absolute URL")
    netloc = parts.netloc
    if "@" in netloc:
        raise _RefusedError("must not contain credentials (user:password@)")
    host_text, bracketed, explicit_port = _split_netloc(netloc)
    if not host_text:
        raise _RefusedError("has no host")

    literal: IPAddress | None
    if bracketed:
        if "%" in host_text:
            raise _RefusedError("must not use an IPv6 zone identifier")
        literal = _parse_ip(host_text)
        if not isinstance(literal, ipaddress.IPv6Address):
            raise _RefusedError("host is not a valid IPv6 address")
        host = str(literal)
    else:
        host = _normalise_name(host_text)
        try:
            literal = _parse_numeric_ipv4(host)
        except ValueError:
            raise _RefusedError(f"host {host} is not a valid IPv4 address") from None
        if literal is not None and str(literal) != host_text:
            # Judge the real address first (clearer reason), then refuse the odd spelling anyway:
            # other software (the Host header's reader, logs, humans) may read it differently.
            problem = _address_problem(literal)
            if problem is not None and not (policy.allow_http_loopback and _is_loopback(literal)):
                raise _RefusedError(f"host {host} is {problem}")
            raise _RefusedError(f"host {host_text} is a non-canonical spelling of {literal}; write {literal}")

    port = explicit_port if explicit_port is not None else _DEFAULT_PORTS[scheme]
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise _RefusedError(f"port {port} is not allowed")
    path_and_query = parts.path or "/"
    if not path_and_query.startswith("/"):
        raise _RefusedError("is not a valid absolute URL")
    if ".." in unquote(parts.path).split("/"):
        raise _RefusedError("must not contain '..' path segments")
    if parts.query or url.split("#", 1)[0].endswith("?"):
        path_and_query += "?" + parts.query
    return _Parsed(scheme, host, literal, explicit_port, port, path_and_query)


def url_problem(url: str, policy: UrlPolicy) -> str | None:
    """Why `url` breaks a rule that needs no DNS lookup (a phrase such as "must use https"), or
    None. The request models use this for URLs the upstream fetches itself (input images, LoRAs):
    http is accepted only to loopback (`localhost` or a loopback address) under a policy that
    allows it, since no lookup says where any other host points."""
    try:
        parsed = _parse(url, policy)
    except _RefusedError as refused:
        return refused.reason
    loopback = parsed.host == "localhost" or (parsed.literal is not None and _is_loopback(parsed.literal))
    if parsed.scheme == "http" and not loopback:
        return "must use https (http is only allowed to loopback in development)"
    return None


def check_url(
    url: str, policy: UrlPolicy, *, resolver: Resolver | None = None, label: str = "URL"
) -> CheckedUrl:
    """Vet `url` under `policy` and return it with its vetted addresses, or raise `UnsafeUrlError`.

    `label` names the URL in messages ("webhook URL must use https"). Messages show the host and
    addresses, never the path or query (they may hold tokens). A resolver failure that may be
    temporary (EAI_AGAIN) raises a retryable `FetchError` instead.
    """
    try:
        parsed = _parse(url, policy)
        addresses = _vetted_addresses(parsed, policy, resolver or system_resolver)
    except _RefusedError as refused:
        raise UnsafeUrlError(f"{label} {refused.reason}") from None
    host, port = parsed.host, parsed.port
    netloc_out = f"[{host}]" if ":" in host else host
    if parsed.explicit_port is not None and port != _DEFAULT_PORTS[parsed.scheme]:
        netloc_out += f":{port}"
    return CheckedUrl(
        url=f"{parsed.scheme}://{netloc_out}{parsed.path_and_query}",
        scheme=parsed.scheme,
        host=host,
        port=port,
        path_and_query=parsed.path_and_query,
        addresses=tuple(dict.fromkeys(str(ip) for ip in addresses)),
    )


def _vetted_addresses(parsed: _Parsed, policy: UrlPolicy, resolver: Resolver) -> list[IPAddress]:
    if parsed.literal is not None:
        addresses: list[IPAddress] = [parsed.literal]
        subject = "host is"
    else:
        addresses = _resolve(parsed.host, resolver)
        subject = f"host {parsed.host} resolves to"
    for ip in addresses:
        problem = _address_problem(ip)
        if problem is not None and not (policy.allow_http_loopback and _is_loopback(ip)):
            raise _RefusedError(f"{subject} {problem}")
    if parsed.scheme == "http" and not all(_is_loopback(ip) for ip in addresses):
        raise _RefusedError("must use https (http is only allowed to loopback in development)")
    return addresses


def _resolve(host: str, resolver: Resolver) -> list[IPAddress]:
    try:
        raw = list(resolver(host))
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise FetchError(f"DNS lookup for host {host} failed temporarily") from exc
        raise _RefusedError(f"host {host} does not resolve") from None
    if not raw:
        raise _RefusedError(f"host {host} does not resolve")
    addresses: list[IPAddress] = []
    for text in raw:
        ip = _parse_ip(str(text))
        if ip is None:
            raise _RefusedError(f"host {host} resolves to something that is not an IP address")
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        addresses.append(ip)
    return addresses
