"""Which IP addresses `http_fetch` may connect to, and which address a URL's host spells (pure, no I/O).

The rule: a destination is a globally routable unicast address. Loopback, private, link-local, shared
(CGNAT), multicast, broadcast, unspecified, reserved and documentation ranges are refused, as are cloud
metadata endpoints, in IPv4 and IPv6 alike; an IPv6 address that embeds an IPv4 one (mapped, compatible,
NAT64, 6to4) is judged by the IPv4 address it carries. A host a C resolver would read as an IPv4 address
(`2130706433`, `0x7f.1`, `017700000001`, `127.1`) is read here the same way, so no spelling reaches DNS
or slips past the rule. `FOREMAN_HTTP_PRIVATE_HOSTS` may lift the refusal for named hosts, except for the
classes in `Refusal.always`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address

# Instance-metadata services: credentials live there, so no setting makes them reachable.
_METADATA = {
    IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean
    IPv4Address("169.254.170.2"),  # AWS ECS task metadata
    IPv4Address("169.254.170.23"),  # AWS EKS pod identity
    IPv4Address("100.100.100.200"),  # Alibaba Cloud
    IPv4Address("168.63.129.16"),  # Azure WireServer (a public address, so the ranges below miss it)
    IPv4Address("192.0.0.192"),  # Oracle Cloud Classic
    IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
    IPv6Address("fd00:ec2::23"),  # AWS EKS pod identity over IPv6
}

_V4 = [
    ("unspecified", "0.0.0.0/8"),  # "this network": 0.0.0.0 reaches the local host on Linux
    ("loopback", "127.0.0.0/8"),
    ("private", "10.0.0.0/8"),
    ("private", "172.16.0.0/12"),
    ("private", "192.168.0.0/16"),
    ("link-local", "169.254.0.0/16"),
    ("shared address space (CGNAT)", "100.64.0.0/10"),
    ("multicast", "224.0.0.0/4"),
    ("broadcast", "255.255.255.255/32"),
    ("reserved", "240.0.0.0/4"),
    ("reserved", "192.0.0.0/24"),  # IETF protocol assignments
    ("reserved", "192.88.99.0/24"),  # 6to4 relay anycast
    ("documentation", "192.0.2.0/24"),
    ("documentation", "198.51.100.0/24"),
    ("documentation", "203.0.113.0/24"),
    ("benchmarking", "198.18.0.0/15"),
]
_V6 = [
    ("unspecified", "::/128"),
    ("loopback", "::1/128"),
    ("reserved", "64:ff9b:1::/48"),  # local-use NAT64
    ("reserved", "100::/64"),  # discard-only
    ("reserved", "2001::/23"),  # IETF protocol assignments, Teredo included
    ("documentation", "2001:db8::/32"),
    ("documentation", "3fff::/20"),
    ("private (unique local)", "fc00::/7"),
    ("link-local", "fe80::/10"),
    ("private (site-local)", "fec0::/10"),
    ("multicast", "ff00::/8"),
]
_V4_NETWORKS = [(kind, IPv4Network(net)) for kind, net in _V4]
_V6_NETWORKS = [(kind, IPv6Network(net)) for kind, net in _V6]
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")
_COMPATIBLE = IPv6Network("::/96")  # deprecated IPv4-compatible form, ::a.b.c.d
_SIX_TO_FOUR = IPv6Network("2002::/16")

# Refused even for a host named in FOREMAN_HTTP_PRIVATE_HOSTS: no on-premise service lives there.
ALWAYS_REFUSED = frozenset({"cloud metadata", "unspecified", "multicast", "broadcast", "IPv6 zone id"})


@dataclass(frozen=True)
class Refusal:
    """Why an address is not a public destination: its class, and the IPv4 address judged if it was embedded."""

    kind: str
    address: IPAddress
    via: str = ""  # "IPv4-mapped", "NAT64", ...: how an IPv6 address carried the IPv4 one judged

    @property
    def always(self) -> bool:
        return self.kind in ALWAYS_REFUSED

    def __str__(self) -> str:
        return f"{self.kind}, {self.via} {self.address}" if self.via else self.kind


def refusal(address: IPAddress) -> Refusal | None:
    """Why `address` may not be connected to, or None when it is a public unicast address."""
    if isinstance(address, IPv6Address) and address.scope_id:
        return Refusal("IPv6 zone id", address)  # a zone names an interface of this machine
    if address in _METADATA:
        return Refusal("cloud metadata", address)
    if isinstance(address, IPv4Address):
        return _v4_refusal(address)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        via, inner = embedded
        found = _v4_refusal(inner)
        return Refusal(found.kind, inner, via) if found else None
    for kind, network in _V6_NETWORKS:
        if address in network:
            return Refusal(kind, address)
    if address not in _GLOBAL_UNICAST_V6 or not address.is_global:
        return Refusal("reserved", address)
    return None


def _v4_refusal(address: IPv4Address) -> Refusal | None:
    if address in _METADATA:
        return Refusal("cloud metadata", address)
    for kind, network in _V4_NETWORKS:
        if address in network:
            return Refusal(kind, address)
    if not address.is_global:  # whatever IANA adds as special-purpose later
        return Refusal("reserved", address)
    return None


def _embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return "6to4", address.sixtofour
    if address in _COMPATIBLE and int(address) > 1:  # :: and ::1 are themselves, not IPv4-compatible
        return "IPv4-compatible", IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def connect_address(address: IPAddress) -> IPAddress:
    """The address to open a socket to: an IPv4-mapped IPv6 address is its IPv4 address."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells, or None when it is a name.

    IPv6 as in a URL (brackets optional, `%zone` kept as the scope id). IPv4 as inet_aton reads it: one to
    four parts, each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes; a trailing
    dot is ignored. A host whose last label is a number is an IPv4 address or nothing (as in the WHATWG URL
    standard): ValueError when it is not a valid one.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        address, _, zone = host.partition("%")
        ip = IPv6Address(address)
        return IPv6Address(f"{ip}%{zone}") if zone else ip
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # `127.0.0.1.`, as a fully qualified name
    if not _NUMBER.match(labels[-1]):
        return None
    if len(labels) > 4:
        raise ValueError(f"{host!r} ends in a number but is not an IPv4 address")
    parts = [_ipv4_part(label, host) for label in labels]
    *head, last = parts
    if any(part > 0xFF for part in head) or last >= 1 << (8 * (5 - len(parts))):
        raise ValueError(f"{host!r} ends in a number but is not an IPv4 address (a part is out of range)")
    value = last
    for index, part in enumerate(head):
        value |= part << (8 * (3 - index))
    return IPv4Address(value)


def _ipv4_part(label: str, host: str) -> int:
    try:
        if label[:2].lower() == "0x":
            return int(label[2:] or "0", 16)
        if len(label) > 1 and label.startswith("0"):
            return int(label[1:], 8)
        return int(label, 10)
    except ValueError:
        raise ValueError(f"{host!r} ends in a number but is not an IPv4 address (part {label!r})") from None
