"""Where `http_fetch` connects: the host is resolved once, every answer is checked by `core.addresses`, and
the connection is pinned to the checked address (no second lookup, so DNS rebinding has nothing to rebind).

`Resolver` is that one lookup: the system resolver by default; tests hand `HttpTools` their own answers.
`PinnedTransport` sends a request to the pinned address while the URL's host stays the Host header, the TLS
SNI name and the name the certificate must match; a request for any other host is refused, so no hop can
go out unchecked. Named private hosts (FOREMAN_HTTP_PRIVATE_HOSTS, matched as the URL writes the host) may
resolve to private addresses, never to the classes `core.addresses.ALWAYS_REFUSED` lists.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Protocol

import httpx

from activities.tools.registry import tool_error
from contracts.errors import ErrorType
from core.addresses import IPAddress, Refusal, connect_address, ip_literal, refusal
from core.hosts import host_matches

RESOLVE_SECONDS = 10.0  # as long as a connect may take (http._TIMEOUT)
# Answers that say the name does not exist: asking again in a few seconds will not change them.
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class Resolver(Protocol):
    async def resolve(self, host: str) -> list[str]:
        """Every address `host` resolves to (an IPv6 link-local one may carry its `%zone`); socket.gaierror when none."""
        ...


class SystemResolver:
    """The worker's own resolver (getaddrinfo, run in the event loop's executor because it blocks)."""

    async def resolve(self, host: str) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Pin:
    """The one address every connection for `host` goes to, checked before any connection is made."""

    host: str  # as the URL sends it: IDNA-encoded ASCII, IPv6 without brackets
    address: str
    is_name: bool  # False for an IP literal: no SNI, and the certificate must name the address


async def pin_host(url: httpx.URL, resolver: Resolver, private_hosts: list[str]) -> Pin:
    """Resolve `url`'s host once and check every address; ToolNotAllowed if any may not be reached."""
    host = url.raw_host.decode("ascii")
    try:
        literal = ip_literal(host)
    except ValueError as exc:
        raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"invalid host: {exc}") from exc
    addresses = [literal] if literal is not None else await _resolve(resolver, host)
    named_private = host_matches(host, private_hosts)
    for address in addresses:
        found = refusal(address)
        if found is not None and (found.always or not named_private):
            raise tool_error(ErrorType.TOOL_NOT_ALLOWED, _refused(host, address, found, literal is not None))
    # Every answer passed; the first is the one connected to (no fallback to the others: one checked pin).
    return Pin(host=host, address=str(connect_address(addresses[0])), is_name=literal is None)


async def _resolve(resolver: Resolver, host: str) -> list[IPAddress]:
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            answers = await resolver.resolve(host)
    except TimeoutError as exc:
        raise tool_error(ErrorType.TOOL_TRANSIENT, f"resolving {host!r} timed out", retryable=True) from exc
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise tool_error(ErrorType.TOOL_FAILED, f"host {host!r} does not resolve ({exc.strerror})") from exc
        raise tool_error(ErrorType.TOOL_TRANSIENT, f"could not resolve {host!r} ({exc.strerror})", retryable=True) from exc
    if not answers:
        raise tool_error(ErrorType.TOOL_FAILED, f"host {host!r} resolves to no address")
    try:
        return [ip_address(answer) for answer in answers]
    except ValueError as exc:
        raise tool_error(ErrorType.TOOL_FAILED, f"the resolver answered {answers!r} for {host!r}: {exc}") from exc


def _refused(host: str, address: IPAddress, found: Refusal, literal: bool) -> str:
    where = f"is {address}" if literal else f"resolves to {address}"
    hint = "" if found.always else "; an on-premise host must be named in the worker's FOREMAN_HTTP_PRIVATE_HOSTS"
    return f"host {host!r} {where} ({found}): http_fetch reaches public addresses only{hint}"


class PinnedTransport(httpx.AsyncBaseTransport):
    """Sends each request to `pin.address`; the Host header (set by the client from the URL), SNI and the
    certificate check keep the URL's host name."""

    def __init__(self, pin: Pin, inner: httpx.AsyncBaseTransport) -> None:
        self._pin = pin
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii")
        if host != self._pin.host:
            raise tool_error(ErrorType.TOOL_NOT_ALLOWED, f"request for {host!r} on a client pinned to {self._pin.host!r}: not checked")
        extensions = dict(request.extensions)
        if self._pin.is_name:
            extensions["sni_hostname"] = self._pin.host  # httpcore verifies the certificate against this name too
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=self._pin.address),
            headers=request.headers,  # a given stream keeps these as they are: Host stays the URL's
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()
