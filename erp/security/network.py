"""Source addresses: X-Forwarded-For is believed only when the peer is a configured proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def parse_ip(value: str | None) -> IPAddress | None:
    if value is None:
        return None
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def in_networks(ip: IPAddress | None, networks: Sequence[Network]) -> bool:
    return ip is not None and any(ip in net for net in networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> IPAddress | None:
    """Walk X-Forwarded-For from the right, skipping trusted proxies; the first other hop is the client."""
    ip = parse_ip(peer) if peer else None
    if ip is None or not forwarded_for or not in_networks(ip, trusted):
        return ip
    for hop in reversed(forwarded_for.split(",")):
        hop_ip = parse_ip(hop)
        if hop_ip is None:
            return ip  # a garbled header: fall back to the last address we could trust
        if not in_networks(hop_ip, trusted):
            return hop_ip
        ip = hop_ip
    return ip


def source_key(ip: IPAddress | str | None) -> str:
    """The name per-source limits count under: an IPv4 address, or an IPv6 address's /64 (one site
    owns a whole /64 and can rotate through it freely, so counting single addresses limits nothing)."""
    if ip is None:
        return "unknown"
    if isinstance(ip, str):
        parsed = parse_ip(ip)
        if parsed is None:
            return "unknown"
        ip = parsed
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
