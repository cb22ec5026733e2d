"""HTTP for URLs a user gave: only public addresses, checked on every connection, under one deadline.

Every connection resolves its host once, refuses it when *any* address is inside (loopback,
link-local, private, multicast, unspecified, reserved, or an IPv6 form of such an IPv4 address), and
connects to one of the addresses it checked, so a second DNS answer cannot swap in another address.
The URL itself is not rewritten: TLS still sends the real host name and checks the certificate
against it. Redirects are followed up to ``max_redirects``; each new host is checked the same way.

    guard = DestinationGuard(AddressPolicy.allowing(["127.0.0.1/32"]))
    with public_http_client(guard, timeout=10.0) as http, overall_deadline(30.0):
        http.get("https://calendar.example.com/feed.ics")
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from meetpilot.errors import ConfigurationError, DeadlineExceeded, RefusedDestination, UnresolvableHost

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses to try, as text. Injectable, so tests can make a public-looking name
# resolve to a loopback or private address.
Resolver = Callable[[str, int], Sequence[str]]

MAX_REDIRECTS = 5
# NAT64 (RFC 6052): 64:ff9b::a.b.c.d reaches a.b.c.d through a translator.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from ``getaddrinfo``, each once, in the order the system gave them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def inside_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (``"loopback"``, ``"private"``, ...), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            reason = inside_reason(embedded)
            # The connection goes to the IPv4 address; judge by it alone.
            return f"{reason} (IPv4 {embedded} written as IPv6)" if reason else None
        for tunnelled in (address.sixtofour, address.teredo[1] if address.teredo else None):
            if tunnelled is not None and inside_reason(tunnelled):
                return f"{inside_reason(tunnelled)} (IPv4 {tunnelled} tunnelled in IPv6)"
    # Most specific first: 127/8 and 169.254/16 are also "private" to the ipaddress module.
    for name, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if test:
            return name
    if not address.is_global:
        return "not public"  # shared address space (100.64.0.0/10) and the like
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be fetched: every public one, and inside ones only within ``allow``.

    ``allow`` exists for the local stack, whose fake feeds listen on 127.0.0.1; a deployed stack
    leaves it empty.
    """

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> AddressPolicy:
        """A policy from CIDR texts (``"127.0.0.1/32"``; a bare address is a /32 or /128)."""
        parsed: list[IPNetwork] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(f"not a network or address: {text.strip()[:60]!r}") from None
        return cls(tuple(parsed))

    def refusal(self, address: str) -> str | None:
        """Why connecting to ``address`` is refused, or None when it may be used."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        if any(ip.version == net.version and ip in net for net in self.allow):
            return None
        return inside_reason(ip)


# --- the overall deadline -----------------------------------------------------------------------

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("meetpilot_fetch_deadline", default=None)


@contextlib.contextmanager
def overall_deadline(seconds: float) -> Iterator[None]:
    """Every connect, TLS handshake, read and write inside this block ends by ``seconds`` from now.

    Per-operation timeouts alone let a server that drips one byte at a time hold a fetch forever.
    """
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _remaining() -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the fetch ran past its overall deadline")
    return left


def _capped(timeout: float | None) -> tuple[float | None, bool]:
    """The timeout for one operation, and whether the overall deadline is what limits it."""
    left = _remaining()
    if left is None or (timeout is not None and timeout <= left):
        return timeout, False
    return left, True


# --- the guard ----------------------------------------------------------------------------------

# getaddrinfo has no timeout of its own; it runs here so that the deadline can stop waiting for it.
_RESOLVING = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


class DestinationGuard:
    """Resolves a host once and says which of its addresses may be connected to, or refuses it."""

    def __init__(self, policy: AddressPolicy | None = None, resolver: Resolver = system_resolver) -> None:
        self.policy = policy or AddressPolicy()
        self._resolver = resolver

    def vet(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` to connect to, all of them checked.

        Raises RefusedDestination when any address is inside, UnresolvableHost when there is none.
        """
        name = host.strip("[]")
        try:  # an address literal is its own answer; other numeric forms (2130706433) go to the resolver
            addresses = [str(ipaddress.ip_address(name))]
        except ValueError:
            addresses = list(self._resolve(name, port))
        if not addresses:
            raise UnresolvableHost(f"the host {name[:80]} has no address")
        for address in addresses:
            reason = self.policy.refusal(address)
            if reason:
                shown = f"{name} is" if name == address else f"{name[:80]} resolves to {address},"
                raise RefusedDestination(
                    f"{shown} not a public address ({reason}); meetpilot fetches only public addresses"
                )
        return addresses

    def vet_url(self, url: str) -> None:
        """Check a URL's host the way a fetch would (for registration, before storing it).

        ``webcal://`` counts as ``https://``, as feed clients fetch it.
        """
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "webcal") or not parts.hostname:
            raise RefusedDestination("only http(s) and webcal URLs with a host are fetched")
        try:
            port = parts.port or (80 if scheme == "http" else 443)
        except ValueError:
            raise RefusedDestination("the URL's port is not a number from 0 to 65535") from None
        # The same normalisation the HTTP client applies (IDNA, lower case) before it resolves.
        self.vet(httpx.URL(url.strip()).host, port)

    def _resolve(self, host: str, port: int) -> Sequence[str]:
        left = _remaining()
        if left is None:
            return self._resolver(host, port)
        future = _RESOLVING.submit(self._resolver, host, port)
        try:
            return future.result(timeout=left)
        except concurrent.futures.TimeoutError:
            raise DeadlineExceeded(f"resolving {host[:80]} ran past the fetch's overall deadline") from None


# --- the HTTP client ----------------------------------------------------------------------------


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the overall deadline of the fetch using it."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        limit, by_deadline = _capped(timeout)
        try:
            return self._inner.read(max_bytes, limit)
        except httpcore.ReadTimeout:
            if by_deadline:
                raise DeadlineExceeded("reading the answer ran past the fetch's overall deadline") from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        limit, by_deadline = _capped(timeout)
        try:
            self._inner.write(buffer, limit)
        except httpcore.WriteTimeout:
            if by_deadline:
                raise DeadlineExceeded("sending the request ran past the fetch's overall deadline") from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        limit, by_deadline = _capped(timeout)
        try:
            return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, limit))
        except httpcore.ConnectTimeout:
            if by_deadline:
                raise DeadlineExceeded("the TLS handshake ran past the fetch's overall deadline") from None
            raise

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the guard checked, from its one resolution."""

    def __init__(self, guard: DestinationGuard) -> None:
        self._guard = guard
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in self._guard.vet(host, port):
            limit, by_deadline = _capped(timeout)
            try:
                # An address literal: create_connection does no DNS lookup for it.
                stream = self._tcp.connect_tcp(address, port, limit, local_address, socket_options)
            except httpcore.ConnectTimeout as exc:
                if by_deadline:
                    raise DeadlineExceeded("connecting ran past the fetch's overall deadline") from None
                failure = exc
            except httpcore.ConnectError as exc:
                failure = exc
            else:
                return _DeadlineStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise RefusedDestination("a URL a user gave never reaches a local socket")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool that connects through ``_PinnedBackend``.

    httpx 0.28 takes no network backend, so the pool it builds is replaced by an equal one that
    has ours; everything else (request and response mapping, exceptions) stays httpx's own.
    """

    def __init__(self, guard: DestinationGuard, verify: ssl.SSLContext | bool) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify, trust_env=False)
        super().__init__(verify=context, trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("this httpx version builds its transport differently; the address guard cannot attach")
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(guard),
        )


def public_http_client(
    guard: DestinationGuard,
    *,
    timeout: float,
    max_redirects: int = MAX_REDIRECTS,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An httpx client that reaches only addresses ``guard`` allows, following at most ``max_redirects``.

    No proxy from the environment is used: a proxy would resolve the name itself, after our check.
    """
    return httpx.Client(
        transport=_PinnedTransport(guard, verify),
        timeout=timeout,
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=False,
    )
