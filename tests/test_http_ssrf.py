"""`http_fetch` against server-side request forgery: no request reaches a non-public address.

A canary HTTP server on 127.0.0.1 counts every connection made to it; each refused URL points at its port
and it must see none. Names come from a stub resolver handed to `HttpTools` (no DNS query leaves the
machine); where a name must look public, the test checks the refusal, or the pinned address before any
connection is made, or serves the pinned address from a local server named in FOREMAN_HTTP_PRIVATE_HOSTS.
No test sends a packet to any address but loopback.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.api.enums.v1 import EventType, RetryState
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.tools import tool_implementations
from activities.tools.cache import ToolCache
from activities.tools.http import HttpTools
from activities.tools.pinning import Pin, PinnedTransport, pin_host
from contracts.goal import GoalRequest, GoalStatus
from contracts.llm import ModelRequest
from contracts.tools import HttpFetchArgs, ToolResult
from core.addresses import ip_literal, refusal
from stores import from_settings
from stores.content_files import FileContentStore
from testkit.goals import write_playbook
from testkit.models import ScriptedModel, answer, call_tool, tool_messages
from tests.helpers import APPROVERS, run_goal
from worker import all_activities

PUBLIC = "93.184.216.34"  # looks public; no test ever connects to it


class StubResolver:
    """Answers names from a table, without DNS. A name may have several answers in turn (DNS rebinding);
    the last one repeats. Every name asked is recorded."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str) -> list[str]:
        self.asked.append(host)
        turns = self.table.get(host.lower().rstrip("."))
        if turns is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return turns[min(self.asked.count(host), len(turns)) - 1]


def names(**table: str | list[str]) -> StubResolver:
    """`names(a_example=["10.0.0.1"])`: underscores become dots; one answer set per name."""
    return StubResolver({name.replace("_", "."): [[a] if isinstance(a, str) else a] for name, a in table.items()})


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.hosts.append(self.headers.get("Host"))
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect?to="))
            body = b""
        else:
            self.send_response(200)
            body = f"served by {self.server.server_address[0]}".encode()
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    """An HTTP server on a loopback address that counts every connection made to it (a TLS hello included)
    and the Host header of every request it answers."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.hosts: list[str | None] = []
        super().__init__((host, port), _Answer)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True

    def handle_error(self, request, client_address) -> None:  # a client that gives up mid-handshake
        pass

    def __enter__(self) -> Server:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def canary() -> Iterator[Server]:
    with Server() as server:
        yield server


def http_tool(tmp_path: Path, resolver: StubResolver, verify: ssl.SSLContext | None = None):
    return HttpTools(FileContentStore(tmp_path / "content"), ToolCache(None), resolver=resolver, verify=verify).http_fetch


async def fetch(tool, url: str) -> ToolResult:
    return await ActivityEnvironment().run(tool, HttpFetchArgs(url=url))


async def refused(tool, url: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await fetch(tool, url)
    assert info.value.non_retryable, info.value  # retrying cannot make an address public: no second attempt
    return info.value


# --- the rule, pure ------------------------------------------------------------------------------

SPELLINGS = [
    # host as a URL writes it, the address it is, why refused (None: public)
    ("2130706433", "127.0.0.1", "loopback"),  # decimal
    ("0x7f.1", "127.0.0.1", "loopback"),  # hex, short form
    ("0x7f000001", "127.0.0.1", "loopback"),
    ("017700000001", "127.0.0.1", "loopback"),  # octal
    ("0177.0.0.1", "127.0.0.1", "loopback"),
    ("127.1", "127.0.0.1", "loopback"),  # short form
    ("127.0.0.1.", "127.0.0.1", "loopback"),  # trailing dot
    ("0", "0.0.0.0", "unspecified"),
    ("::ffff:127.0.0.1", "::ffff:7f00:1", "loopback, IPv4-mapped 127.0.0.1"),
    ("::127.0.0.1", "::7f00:1", "loopback, IPv4-compatible 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "cloud metadata, NAT64 169.254.169.254"),
    ("2002:a00:1::", "2002:a00:1::", "private, 6to4 10.0.0.1"),
    ("fe80::1%25eth0", "fe80::1%25eth0", "IPv6 zone id"),
    ("1.65536", "1.1.0.0", None),
    ("::ffff:1.1.1.1", "::ffff:101:101", None),
    ("2606:4700:4700::1111", "2606:4700:4700::1111", None),
    ("example.com", None, None),
]


@pytest.mark.parametrize("host, address, why", SPELLINGS)
def test_ipv4_and_ipv6_spellings(host: str, address: str | None, why: str | None) -> None:
    ip = ip_literal(host)
    assert (str(ip) if ip else None) == address
    assert (str(refusal(ip)) if ip and refusal(ip) else None) == why


@pytest.mark.parametrize("host", ["1.2.3.4.5", "08.0.0.1", "1.256.0.0", "0x1g.1", "name.123"])
def test_a_host_ending_in_a_number_is_an_address_or_invalid(host: str) -> None:
    with pytest.raises(ValueError, match="ends in a number"):
        ip_literal(host)


# --- the canary list: every one refused before any connection --------------------------------------

RESOLVER = {
    "internal.example": [["127.0.0.1"]],
    "mixed.example": [[PUBLIC, "127.0.0.1"]],  # several answers, one private: refused
    "mapped.example": [["::ffff:127.0.0.1"]],
    "localhost": [["127.0.0.1", "::1"]],
    "metadata.example": [["169.254.169.254"]],
    "ula.example": [["2606:4700:4700::1111", "fd12:3456::1"]],
    "zone.example": [["fe80::1%lo"]],
}

CANARY_LIST = [
    # URL ({port}: the canary's), expected error type, what the message says
    ("http://127.0.0.1:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("https://127.0.0.1:{port}/", "ToolNotAllowed", "(loopback)"),
    ("http://127.254.1.1:{port}/", "ToolNotAllowed", "(loopback)"),
    ("http://localhost:{port}/", "ToolNotAllowed", "resolves to 127.0.0.1 (loopback)"),
    ("http://localhost.:{port}/", "ToolNotAllowed", "resolves to 127.0.0.1 (loopback)"),
    ("http://2130706433:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("http://0x7f.1:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("http://0x7f000001:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("http://017700000001:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("http://127.1:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("http://127.0.0.1.:{port}/", "ToolNotAllowed", "is 127.0.0.1 (loopback)"),
    ("http://0177.0.0.1:{port}/", "ToolArgumentsInvalid", "invalid URL"),  # httpx refuses to parse it at all
    ("http://127.0.0.1.5:{port}/", "ToolArgumentsInvalid", "ends in a number"),  # a name to httpx, no address here
    ("http://0.0.0.0:{port}/", "ToolNotAllowed", "(unspecified)"),
    ("http://0:{port}/", "ToolNotAllowed", "is 0.0.0.0 (unspecified)"),
    ("http://[::]:{port}/", "ToolNotAllowed", "(unspecified)"),
    ("http://[::1]:{port}/", "ToolNotAllowed", "(loopback)"),
    ("http://[::ffff:127.0.0.1]:{port}/", "ToolNotAllowed", "(loopback, IPv4-mapped 127.0.0.1)"),
    ("http://[::ffff:7f00:1]:{port}/", "ToolNotAllowed", "(loopback, IPv4-mapped 127.0.0.1)"),
    ("http://[::127.0.0.1]:{port}/", "ToolNotAllowed", "(loopback, IPv4-compatible 127.0.0.1)"),
    ("http://[64:ff9b::7f00:1]:{port}/", "ToolNotAllowed", "(loopback, NAT64 127.0.0.1)"),
    ("http://[2002:7f00:1::]:{port}/", "ToolNotAllowed", "(loopback, 6to4 127.0.0.1)"),
    ("http://[fe80::1%25lo]:{port}/", "ToolNotAllowed", "(IPv6 zone id)"),
    ("http://evil@127.0.0.1:{port}/", "ToolNotAllowed", "(loopback)"),
    ("http://example.com@127.0.0.1:{port}/", "ToolNotAllowed", "(loopback)"),
    ("http://example.com:443@127.0.0.1:{port}/", "ToolNotAllowed", "(loopback)"),
    ("http://internal.example:{port}/", "ToolNotAllowed", "resolves to 127.0.0.1 (loopback)"),
    ("http://INTERNAL.example.:{port}/", "ToolNotAllowed", "resolves to 127.0.0.1 (loopback)"),
    ("http://mixed.example:{port}/", "ToolNotAllowed", "resolves to 127.0.0.1 (loopback)"),
    ("http://mapped.example:{port}/", "ToolNotAllowed", "(loopback, IPv4-mapped 127.0.0.1)"),
    ("http://zone.example:{port}/", "ToolNotAllowed", "(IPv6 zone id)"),
    ("http://10.0.0.1:{port}/", "ToolNotAllowed", "(private)"),
    ("http://172.16.5.4:{port}/", "ToolNotAllowed", "(private)"),
    ("http://192.168.1.1:{port}/", "ToolNotAllowed", "(private)"),
    ("http://169.254.1.1:{port}/", "ToolNotAllowed", "(link-local)"),
    ("http://169.254.169.254:{port}/latest/meta-data/", "ToolNotAllowed", "(cloud metadata)"),
    ("http://100.100.100.200:{port}/", "ToolNotAllowed", "(cloud metadata)"),
    ("http://168.63.129.16:{port}/", "ToolNotAllowed", "(cloud metadata)"),
    ("http://metadata.example:{port}/", "ToolNotAllowed", "resolves to 169.254.169.254 (cloud metadata)"),
    ("http://[fd00:ec2::254]:{port}/", "ToolNotAllowed", "(cloud metadata)"),
    ("http://[2002:a9fe:a9fe::]:{port}/", "ToolNotAllowed", "(cloud metadata, 6to4 169.254.169.254)"),
    ("http://100.64.0.1:{port}/", "ToolNotAllowed", "(shared address space (CGNAT))"),
    ("http://224.0.0.1:{port}/", "ToolNotAllowed", "(multicast)"),
    ("http://255.255.255.255:{port}/", "ToolNotAllowed", "(broadcast)"),
    ("http://240.0.0.1:{port}/", "ToolNotAllowed", "(reserved)"),
    ("http://192.0.2.1:{port}/", "ToolNotAllowed", "(documentation)"),
    ("http://198.18.0.1:{port}/", "ToolNotAllowed", "(benchmarking)"),
    ("http://[fc00::1]:{port}/", "ToolNotAllowed", "(private (unique local))"),
    ("http://ula.example:{port}/", "ToolNotAllowed", "resolves to fd12:3456::1 (private (unique local))"),
    ("http://[fe80::1]:{port}/", "ToolNotAllowed", "(link-local)"),
    ("http://[fec0::1]:{port}/", "ToolNotAllowed", "(private (site-local))"),
    ("http://[ff02::1]:{port}/", "ToolNotAllowed", "(multicast)"),
    ("http://[2001:db8::1]:{port}/", "ToolNotAllowed", "(documentation)"),
    ("http://[2001::1]:{port}/", "ToolNotAllowed", "(reserved)"),  # Teredo
]


def _is_name(url: str) -> bool:
    try:
        return httpx.URL(url.format(port=1)).host.rstrip(".") in RESOLVER
    except httpx.InvalidURL:
        return False


@pytest.mark.parametrize("url, error_type, says", CANARY_LIST, ids=[u for u, _, _ in CANARY_LIST])
async def test_no_request_reaches_the_canary(
    url: str, error_type: str, says: str, canary: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOREMAN_HTTP_PRIVATE_HOSTS", raising=False)  # the production default
    resolver = StubResolver(RESOLVER)
    error = await refused(http_tool(tmp_path, resolver), url.format(port=canary.port))
    assert error.type == error_type and says in error.message, error
    assert len(resolver.asked) == int(_is_name(url))  # literals never reach the resolver; a name is asked once
    assert canary.connections == 0 and canary.hosts == []


LITERALS = [case for case in CANARY_LIST if not _is_name(case[0])]


@pytest.mark.parametrize("url, error_type, says", LITERALS, ids=[u for u, _, _ in LITERALS])
async def test_the_worker_as_built_refuses_them_too(
    url: str, error_type: str, says: str, canary: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool `tool_implementations` binds (system resolver, settings as shipped): IP literals only, so no DNS."""
    monkeypatch.delenv("FOREMAN_HTTP_PRIVATE_HOSTS", raising=False)
    error = await refused(tool_implementations(from_settings())["http_fetch"], url.format(port=canary.port))
    assert error.type == error_type and says in error.message, error
    assert canary.connections == 0


async def test_the_canary_counts_and_only_named_hosts_reach_private_addresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: a host named in FOREMAN_HTTP_PRIVATE_HOSTS reaches a fresh canary, and nothing else does."""
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1, internal.example, metadata.example, zone.example, 0.0.0.0")
    tool = http_tool(tmp_path, StubResolver(RESOLVER))
    with Server() as fresh:
        assert (await fetch(tool, f"http://127.0.0.1:{fresh.port}/")).content.endswith("served by 127.0.0.1")
        assert (await fetch(tool, f"http://internal.example:{fresh.port}/")).ok
        assert (fresh.connections, fresh.hosts) == (2, [f"127.0.0.1:{fresh.port}", f"internal.example:{fresh.port}"])
        # Named as the URL writes the host: another spelling of the same address is not named.
        for url, says in [
            (f"http://127.1:{fresh.port}/", "(loopback)"),
            (f"http://localhost:{fresh.port}/", "(loopback)"),
            # Never reachable, named or not.
            (f"http://metadata.example:{fresh.port}/", "(cloud metadata)"),
            (f"http://zone.example:{fresh.port}/", "(IPv6 zone id)"),
            (f"http://0.0.0.0:{fresh.port}/", "(unspecified)"),
        ]:
            error = await refused(tool, url)
            assert error.type == "ToolNotAllowed" and says in error.message, error
        assert fresh.connections == 2


# --- pinning: one lookup, the connection goes where the check looked ----------------------------------


class Recorder(httpx.AsyncBaseTransport):
    """Stands where the network would be: keeps each request it is handed and answers 204, connecting nowhere."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


async def test_dns_rebinding_finds_the_first_answer_pinned(canary: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """First answer public, second private: the request is handed on for the public address (checked here,
    before any connection), and the lookup a later call makes is checked again and refused."""
    monkeypatch.delenv("FOREMAN_HTTP_PRIVATE_HOSTS", raising=False)
    resolver = StubResolver({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = httpx.URL(f"https://rebind.example:{canary.port}/page")
    pin = await pin_host(url, resolver, [])
    assert pin == Pin(host="rebind.example", address=PUBLIC, is_name=True)
    network = Recorder()
    async with httpx.AsyncClient(transport=PinnedTransport(pin, network)) as client:
        assert (await client.get(url)).status_code == 204
    (sent,) = network.requests
    assert str(sent.url) == f"https://{PUBLIC}:{canary.port}/page"
    assert sent.headers["host"] == f"rebind.example:{canary.port}" and sent.extensions["sni_hostname"] == "rebind.example"
    assert resolver.asked == ["rebind.example"]  # nothing looked the name up a second time
    error = await refused(http_tool(tmp_path, resolver), str(url))  # the next call's lookup: the private answer
    assert error.type == "ToolNotAllowed" and "resolves to 127.0.0.1 (loopback)" in error.message
    assert canary.connections == 0


async def test_the_connection_goes_to_the_address_that_was_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served from local servers: the name's first answer is 127.0.0.1, every later one the canary on 127.0.0.2.
    A second lookup anywhere between check and connection would land on the canary."""
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "rebind.example")
    with Server("127.0.0.1") as pinned, Server("127.0.0.2", pinned.port) as canary:
        resolver = StubResolver({"rebind.example": [["127.0.0.1"], ["127.0.0.2"]]})
        result = await fetch(http_tool(tmp_path, resolver), f"http://rebind.example:{pinned.port}/page")
        assert result.content.endswith("served by 127.0.0.1") and pinned.hosts == [f"rebind.example:{pinned.port}"]
        assert resolver.asked == ["rebind.example"] and canary.connections == 0


async def test_a_pinned_client_refuses_a_request_for_another_host() -> None:
    network = Recorder()
    async with httpx.AsyncClient(transport=PinnedTransport(Pin("a.example", PUBLIC, True), network)) as client:
        with pytest.raises(ApplicationError) as info:
            await client.get("http://b.example/")  # as a followed redirect would be: never checked, never sent
    assert info.value.type == "ToolNotAllowed" and network.requests == []


async def test_redirects_are_reported_and_the_target_checked_again(canary: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "pages.example")
    tool = http_tool(tmp_path, names(pages_example="127.0.0.1"))
    with Server() as pages:
        for target, says in [(f"http://127.0.0.1:{canary.port}/", "(loopback)"),
                             ("http://169.254.169.254/latest/meta-data/", "(cloud metadata)")]:
            hop = await fetch(tool, f"http://pages.example:{pages.port}/redirect?to={target}")
            assert hop.content.startswith(f"HTTP 302 redirect from http://pages.example:{pages.port}/redirect?to={target} to {target}")
            error = await refused(tool, target)  # the model's next call
            assert error.type == "ToolNotAllowed" and says in error.message
    assert canary.connections == 0


async def test_no_proxy_from_the_environment(canary: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "pages.example")
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{canary.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Server() as pages:
        result = await fetch(http_tool(tmp_path, names(pages_example="127.0.0.1")), f"http://pages.example:{pages.port}/")
        assert result.ok and pages.connections == 1
    assert canary.connections == 0


# --- HTTPS to a pinned address: SNI and the certificate check keep the name ------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, key, issuer: str, issuer_key, *, ca: bool, dns: str | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throw-away CA and two server certificates it signed: for pinned.example and for other.example."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Foreman test CA", ca_key, "Foreman test CA", ca_key, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths = {"ca": folder / "ca.pem"}
    for dns in ("pinned.example", "other.example"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(dns, key, "Foreman test CA", ca_key, ca=False, dns=dns)
        path = folder / f"{dns}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        paths[dns] = path
    return paths


def tls_server(certificate: Path, sni: list[str | None]) -> Server:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate)
    context.sni_callback = lambda connection, name, _: sni.append(name)
    return Server(tls=context)


async def test_https_to_a_pinned_address_keeps_the_name_for_sni_and_the_certificate(
    pki: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "pinned.example, 127.0.0.1")
    trusted = ssl.create_default_context(cafile=pki["ca"])
    tool = http_tool(tmp_path, names(pinned_example="127.0.0.1"), verify=trusted)
    sni: list[str | None] = []
    with tls_server(pki["pinned.example"], sni) as server:
        result = await fetch(tool, f"https://pinned.example:{server.port}/")
        assert result.content.endswith("served by 127.0.0.1")
        assert sni == ["pinned.example"] and server.hosts == [f"pinned.example:{server.port}"]
        # The address itself is not what the certificate names: verification is on, for literals too.
        error = await refused(tool, f"https://127.0.0.1:{server.port}/")
        assert error.type == "ToolFailed" and "certificate" in error.message
    with tls_server(pki["other.example"], sni) as impostor:  # a valid certificate, for another name
        error = await refused(tool, f"https://pinned.example:{impostor.port}/")
        assert error.type == "ToolFailed" and "certificate" in error.message
        assert impostor.hosts == []  # the handshake failed: no request was sent


# --- a whole goal: the refusal is typed, recorded, and costs one tool call ----------------------------


async def test_a_goal_sees_the_refusal_and_pays_one_call(canary: Server, client: Client, task_queue: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The role's policy allows 127.0.0.1 (the gate judges names); the worker refuses the address."""
    monkeypatch.delenv("FOREMAN_HTTP_PRIVATE_HOSTS", raising=False)
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    target = f"http://127.0.0.1:{canary.port}/admin"
    policy = {"principals": [{"role": "researcher", "tools": ["http_fetch"], "side_effects": ["read"], "hosts": ["127.0.0.1"]}],
              "approvers": APPROVERS}
    step = {"type": "agent", "id": "fetch", "role": "researcher", "instruction": "Read the admin page.", "tools": ["http_fetch"],
            "max_turns": 2}
    playbook = write_playbook(tmp_path / "playbooks", {"name": "ssrf", "steps": [step], "policy": policy})

    def respond(request: ModelRequest):
        seen = tool_messages(request)
        return answer(f"could not read it: {seen[-1].content}") if seen else call_tool("http_fetch", {"url": target})

    activities = all_activities(ScriptedModel(respond).activity())
    result, history = await run_goal(client, task_queue, GoalRequest(goal="read the admin page", playbook=playbook), activities)
    assert result.status is GoalStatus.COMPLETED, result.error
    (call,) = result.steps[0].tool_calls
    assert not call.ok and call.error.startswith("ToolNotAllowed: host '127.0.0.1' is 127.0.0.1 (loopback)")
    assert result.usage.tool_calls == 1
    failed = [e.activity_task_failed_event_attributes for e in history.events
              if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    assert [f.retry_state for f in failed] == [RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE]  # one attempt, no retry
    assert json.loads(call.arguments_json)["url"] == target
    assert canary.connections == 0
