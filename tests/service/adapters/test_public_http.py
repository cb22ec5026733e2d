"""Feed URLs cannot reach inside: every address class refused, on every redirect hop, under one deadline.

Two loopback listeners play the parts: one on 127.0.0.1 is "the internet" (allow-listed, as the
local stack does), one on 127.0.0.2 is "inside" (not allow-listed; it stands for a metadata service
or a database). A refusal is proved by the inside listener never seeing a connection.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meetpilot.adapters.ics import IcsFeedClient
from meetpilot.adapters.public_http import MAX_REDIRECTS, AddressPolicy, DestinationGuard, inside_reason
from meetpilot.domain.calendar import CalendarSourceError
from meetpilot.errors import ConfigurationError, RefusedDestination, UnresolvableHost
from meetpilot.settings import Settings

FEED = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n"
SECRET = "/calendar/private-9a8b7c6d5e4f/basic.ics"
PUBLIC_NAME = "feeds.example.com"  # a name that looks public; the tests decide what it resolves to
ALLOW_LOOPBACK_HOST = ["127.0.0.1/32"]


@dataclass
class Listener:
    """An HTTP server on one loopback address: ``routes`` maps a path to a handler; ``hits`` counts requests."""

    address: str
    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    port: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.address}:{self.port}{path}"


def _serve(address: str, wrap: Callable[[socket.socket], socket.socket] | None = None) -> Iterator[Listener]:
    state = Listener(address)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.hits.append(self.path)
            state.hosts.append(self.headers.get("Host", ""))
            route = state.routes.get(self.path)
            if route is None:
                _answer(self, 200, FEED)
            else:
                route(self)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client hanging up on a drip is the point of one test

    server = Server((address, 0), Handler)
    if wrap is not None:
        server.socket = wrap(server.socket)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.stop.set()
    server.shutdown()
    server.server_close()
    thread.join()


def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _redirect(location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    return lambda h: _answer(h, 302, b"", {"Location": location})


@pytest.fixture
def internet() -> Iterator[Listener]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def inside() -> Iterator[Listener]:
    yield from _serve("127.0.0.2")


class Resolver:
    """A fake DNS: ``names`` maps a host to its addresses; every lookup is recorded."""

    def __init__(self, names: dict[str, Sequence[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if host in self.names:
            return list(self.names[host])
        try:  # address literals (and only they) resolve as the system would
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return []


def _client(resolver: Resolver, *, allow: Sequence[str] = ALLOW_LOOPBACK_HOST, **options: object) -> IcsFeedClient:
    guard = DestinationGuard(AddressPolicy.allowing(allow), resolver)
    return IcsFeedClient(guard=guard, timeout=5.0, **options)  # type: ignore[arg-type]


def _refused(client: IcsFeedClient, url: str) -> CalendarSourceError:
    with pytest.raises(CalendarSourceError) as caught:
        client.fetch(url)
    return caught.value


# --- every inside address class -----------------------------------------------------------------

INSIDE = {
    "loopback-v4": ("127.0.0.2", "loopback"),
    "loopback-v6": ("::1", "loopback"),
    "link-local-v4-metadata": ("169.254.169.254", "link-local"),
    "link-local-v6": ("fe80::1", "link-local"),
    "rfc1918-10": ("10.0.0.5", "private"),
    "rfc1918-172-16": ("172.16.8.1", "private"),
    "rfc1918-192-168": ("192.168.1.20", "private"),
    "unique-local-fc00": ("fc00::1", "private"),
    "unique-local-fd": ("fd12:3456::1", "private"),
    "multicast-v4": ("224.0.0.251", "multicast"),
    "multicast-v6": ("ff02::fb", "multicast"),
    "unspecified-v4": ("0.0.0.0", "unspecified"),
    "unspecified-v6": ("::", "unspecified"),
    "mapped-loopback": ("::ffff:127.0.0.2", "loopback"),
    "mapped-rfc1918": ("::ffff:10.0.0.5", "private"),
    "mapped-metadata": ("::ffff:169.254.169.254", "link-local"),
    "nat64-loopback": ("64:ff9b::7f00:2", "loopback"),
    "shared-cgnat": ("100.64.0.1", "not public"),
}


@pytest.mark.parametrize(("address", "reason"), INSIDE.values(), ids=INSIDE.keys())
def test_each_inside_address_class_is_refused(inside, address, reason):
    resolver = Resolver({PUBLIC_NAME: [address]})
    client = _client(resolver)
    error = _refused(client, inside.url(SECRET, host=PUBLIC_NAME))
    assert f"not a public address ({reason}" in str(error) and f"resolves to {address}" in str(error)
    assert not error.retryable
    assert inside.hits == []


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"], ids=lambda a: a.replace(":", "-")
)
def test_public_addresses_pass_the_policy(address):
    assert inside_reason(ipaddress.ip_address(address)) is None
    assert AddressPolicy().refusal(address) is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.2", "[::ffff:127.0.0.2]", "2130706434", "0x7f.0.0.2", "0.0.0.0"],
    ids=["dotted", "ipv4-mapped-ipv6", "decimal", "hex", "unspecified"],
)
def test_address_literals_that_reach_inside_are_refused_before_connecting(inside, host):
    # The system's resolver reads the numeric forms (127.0.0.2 written as one decimal or in hex);
    # 0.0.0.0 reaches this machine on Linux. Nothing is allow-listed: a deployed stack's policy.
    client = IcsFeedClient(guard=DestinationGuard(), timeout=5.0)
    error = _refused(client, f"http://{host}:{inside.port}{SECRET}")
    assert "not a public address" in str(error)
    assert inside.hits == []


def test_a_public_name_that_resolves_inside_is_refused(inside):
    resolver = Resolver({PUBLIC_NAME: ["127.0.0.2"]})
    error = _refused(_client(resolver), inside.url(SECRET, host=PUBLIC_NAME))
    assert f"{PUBLIC_NAME} resolves to 127.0.0.2, not a public address (loopback)" in str(error)
    assert inside.hits == []


def test_one_inside_address_among_public_ones_refuses_the_name(inside):
    resolver = Resolver({PUBLIC_NAME: ["93.184.215.14", "127.0.0.2"]})
    _refused(_client(resolver), inside.url(SECRET, host=PUBLIC_NAME))
    assert inside.hits == []


def test_the_connection_goes_to_the_address_that_was_checked(internet):
    # A rebinding DNS: the first answer passes the check, every later one points inside. The name
    # does not exist in real DNS either, so a lookup by the HTTP client itself would fail.
    name = "feeds.rebinding.invalid"

    class Rebinding(Resolver):
        def __call__(self, host: str, port: int) -> Sequence[str]:
            self.lookups.append(host)
            return ["127.0.0.1"] if len(self.lookups) == 1 else ["10.0.0.5"]

    resolver = Rebinding({})
    fetched = _client(resolver).fetch(internet.url(SECRET, host=name))
    assert fetched.body == FEED
    assert resolver.lookups == [name]
    assert internet.hosts == [f"{name}:{internet.port}"]  # the Host header keeps the name


# --- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("hop", range(1, MAX_REDIRECTS + 1))
def test_a_redirect_to_an_inside_address_is_refused_on_any_hop(internet, inside, hop):
    resolver = Resolver({PUBLIC_NAME: ["127.0.0.1"], "intranet.example.com": ["127.0.0.2"]})
    for n in range(1, hop):
        internet.routes[f"/hop{n}"] = _redirect(f"/hop{n + 1}")
    internet.routes[f"/hop{hop}"] = _redirect(inside.url("/latest/meta-data/", host="intranet.example.com"))
    error = _refused(_client(resolver), internet.url("/hop1", host=PUBLIC_NAME))
    assert "intranet.example.com resolves to 127.0.0.2, not a public address (loopback)" in str(error)
    assert len(internet.hits) == hop and inside.hits == []


def test_a_redirect_to_an_inside_address_literal_is_refused(internet, inside):
    internet.routes["/old"] = _redirect(inside.url(SECRET))
    error = _refused(_client(Resolver({})), internet.url("/old"))
    assert "127.0.0.2 is not a public address (loopback)" in str(error)
    assert inside.hits == []


def test_five_redirects_are_followed(internet):
    for n in range(1, MAX_REDIRECTS + 1):
        internet.routes[f"/hop{n}"] = _redirect(f"/hop{n + 1}")
    assert _client(Resolver({})).fetch(internet.url("/hop1")).body == FEED
    assert internet.hits[-1] == f"/hop{MAX_REDIRECTS + 1}"


def test_more_than_five_redirects_are_refused(internet):
    for n in range(1, MAX_REDIRECTS + 2):
        internet.routes[f"/hop{n}"] = _redirect(f"/hop{n + 1}")
    error = _refused(_client(Resolver({})), internet.url("/hop1"))
    assert str(error).endswith("it redirected more than 5 times")
    assert len(internet.hits) == MAX_REDIRECTS + 1  # the sixth redirect is never followed


# --- the overall deadline ------------------------------------------------------------------------


def test_a_slow_drip_feed_is_cut_off_at_the_overall_deadline(internet):
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        # One byte every 50 ms: each read is quick, so per-read timeouts never fire.
        while not internet.stop.wait(0.05):
            handler.wfile.write(b"x")
            handler.wfile.flush()

    internet.routes[SECRET] = drip
    client = _client(Resolver({}), deadline=1.0)
    started = time.monotonic()
    error = _refused(client, internet.url(SECRET))
    elapsed = time.monotonic() - started
    assert str(error).endswith("it took longer than the 1 s allowed") and error.retryable
    assert 0.9 <= elapsed < 3.0  # the per-read timeout is 5 s and the drip would last 83 minutes


def test_the_deadline_also_bounds_a_slow_name_lookup(internet):
    release = threading.Event()

    def slow(host: str, port: int) -> Sequence[str]:
        release.wait(10)
        return ["127.0.0.1"]

    guard = DestinationGuard(AddressPolicy.allowing(ALLOW_LOOPBACK_HOST), slow)
    client = IcsFeedClient(guard=guard, timeout=5.0, deadline=0.5)
    started = time.monotonic()
    try:
        error = _refused(client, internet.url(SECRET, host="slow.example.com"))
    finally:
        release.set()
    assert "took longer than the 0.5 s allowed" in str(error)
    assert time.monotonic() - started < 3.0 and internet.hits == []


# --- errors in our words -------------------------------------------------------------------------

MARKER = "REMOTE-BODY-7f3a"


def _error_page(status: int) -> Callable[[BaseHTTPRequestHandler], None]:
    body = f"<html>\n<h1>{MARKER}</h1>\nTraceback (most recent call last):\n  {MARKER}\n</html>".encode()
    return lambda h: _answer(h, status, body, {"Content-Type": "text/html", "X-Debug": MARKER})


@pytest.mark.parametrize(
    "setup",
    ["status-500", "status-404", "refused", "too-many-redirects", "connection-refused", "unresolvable"],
)
def test_a_fetch_error_is_one_line_in_our_words_without_the_remote_body(internet, setup):
    resolver = Resolver({PUBLIC_NAME: ["127.0.0.1"], "inside.example.com": ["10.0.0.5"]})
    url = internet.url(SECRET, host=PUBLIC_NAME)
    if setup.startswith("status-"):
        internet.routes[SECRET] = _error_page(int(setup.split("-")[1]))
    elif setup == "refused":
        internet.routes[SECRET] = _redirect(f"http://inside.example.com{SECRET}")
    elif setup == "too-many-redirects":
        internet.routes[SECRET] = _redirect(SECRET)
    elif setup == "connection-refused":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}{SECRET}"
    else:
        url = f"http://nowhere.example.com{SECRET}"
    error = _refused(_client(resolver), url)
    text = str(error)
    assert len(text.splitlines()) == 1 and text.startswith(("ICS feed http://", "could not fetch", "refused to"))
    chained = "".join(traceback.format_exception(error))
    assert MARKER not in chained and "private-9a8b7c6d5e4f" not in chained


# --- TLS still checks the real host name ---------------------------------------------------------


@dataclass
class Tls:
    listener: Listener
    client_context: ssl.SSLContext


@pytest.fixture
def tls_internet(tmp_path: Path) -> Iterator[Tls]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "feeds.example.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("feeds.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(cert_file))
    for listener in _serve("127.0.0.1", wrap=lambda s: server_context.wrap_socket(s, server_side=True)):
        yield Tls(listener, client_context)


def test_tls_checks_the_certificate_against_the_feed_host_name_not_the_address(tls_internet):
    resolver = Resolver({"feeds.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    client = _client(resolver, verify=tls_internet.client_context)
    port = tls_internet.listener.port
    assert client.fetch(f"https://feeds.example.test:{port}{SECRET}").body == FEED
    # The same address under a name the certificate does not name: refused by the certificate check.
    error = _refused(client, f"https://other.example.test:{port}{SECRET}")
    assert str(error).endswith("its TLS certificate is not valid for that host")
    assert tls_internet.listener.hits == [SECRET]


# --- registration --------------------------------------------------------------------------------


def test_vetting_a_url_refuses_inside_hosts_and_names_without_address():
    guard = DestinationGuard(resolver=Resolver({PUBLIC_NAME: ["10.0.0.5"], "ok.example.com": ["93.184.215.14"]}))
    guard.vet_url("webcal://ok.example.com/feed.ics")
    with pytest.raises(RefusedDestination, match=r"resolves to 10\.0\.0\.5, not a public address \(private\)"):
        guard.vet_url(f"https://{PUBLIC_NAME}/feed.ics")
    with pytest.raises(RefusedDestination, match="link-local"):
        guard.vet_url("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(UnresolvableHost, match="has no address"):
        guard.vet_url("https://nowhere.example.com/feed.ics")


# --- the allow-list setting ----------------------------------------------------------------------


def test_the_allow_list_setting_reads_networks_and_refuses_anything_else():
    settings = Settings.from_env({"FEED_ALLOW_NETWORKS": "127.0.0.1, 10.1.0.0/16 ,"})
    assert settings.feed_allow_networks == ("127.0.0.1/32", "10.1.0.0/16")
    assert Settings.from_env({}).feed_allow_networks == ()  # a deployed stack: nothing inside
    with pytest.raises(ConfigurationError, match="FEED_ALLOW_NETWORKS"):
        Settings.from_env({"FEED_ALLOW_NETWORKS": "localhost"})
    policy = AddressPolicy.allowing(settings.feed_allow_networks)
    assert policy.refusal("10.1.2.3") is None and policy.refusal("10.2.0.1") == "private"
