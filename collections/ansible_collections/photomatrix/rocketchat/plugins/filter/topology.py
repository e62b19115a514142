"""Addresses across hosts, by the rule of docs/topology.md section 2.

A service on the same inventory host as the consumer is reached by its container alias on the
host's own Docker network; on another host by that host's ``photomatrix_host_address`` and the port
it publishes there.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def _host_address(hostvars: Any, host: str) -> str:
    variables = hostvars[host]
    for name in ("photomatrix_host_address", "ansible_host"):
        if variables.get(name):
            return str(variables[name])
    return host


def _instance_count(hostvars: Any, host: str, count_var: str | None) -> int:
    if not count_var:
        return 1
    variables = hostvars[host]
    count = int(variables[count_var]) if count_var in variables else 1
    if count < 1:
        raise ValueError(f"{count_var} of {host} must be at least 1, not {count}")
    return count


def instance_alias(alias: str, index: int) -> str:
    """The container alias of instance ``index`` (0-based): the first keeps the plain alias."""
    return alias if index == 0 else f"{alias}-{index + 1}"


def endpoints(
    hosts: list[str],
    hostvars: Any,
    here: str,
    alias: str,
    port: int,
    count_var: str | None = None,
    fixed_address: str | None = None,
) -> list[str]:
    """``alias:port`` for instances on ``here``, ``host_address:published_port`` for the others.

    With ``count_var`` (e.g. ``rocketchat_instance_count``) a host runs that many instances: the
    i-th listens on ``port`` inside its container (alias ``<alias>-<i+1>``) and is published on
    ``port + i`` on its host address. With ``fixed_address`` (the first instance's container address,
    the i-th's is that plus i) instances on ``here`` are named by address: an nginx upstream block
    resolves names once, at start, so an instance re-created with another address would be lost.
    """
    found: list[str] = []
    for host in hosts:
        for index in range(_instance_count(hostvars, host, count_var)):
            if host == here and fixed_address:
                found.append(f"{instance_address(fixed_address, index)}:{int(port)}")
            elif host == here:
                found.append(f"{instance_alias(alias, index)}:{int(port)}")
            else:
                found.append(f"{_host_address(hostvars, host)}:{int(port) + index}")
    return found


def instance_address(address: str, index: int) -> str:
    """The fixed container address of instance ``index`` (0-based): the first keeps ``address``, the
    i-th is ``address + i`` (e.g. the bot replicas 10.250.0.20, 10.250.0.21)."""
    return str(ipaddress.ip_address(str(address)) + int(index))


def source_addresses(
    hosts: list[str],
    hostvars: Any,
    here: str,
    container_address: str | None,
    count_var: str | None = None,
) -> list[str]:
    """The addresses the peers on ``hosts`` arrive from, as a service on ``here`` sees them.

    A peer on the same host arrives from its fixed container address; a peer on another host from its
    host address (a published port keeps the source address). With ``count_var`` (e.g.
    ``chatbot_replicas``) a host runs that many instances, the i-th at ``instance_address(address, i)``.
    """
    found: list[str] = []
    for host in hosts:
        if host == here:
            if container_address:
                count = _instance_count(hostvars, host, count_var)
                found.extend(instance_address(container_address, index) for index in range(count))
        else:
            found.append(_host_address(hostvars, host))
    return found


def host_addresses(hosts: list[str], hostvars: Any) -> list[str]:
    """``photomatrix_host_address`` (else ``ansible_host``, else the name) of each host."""
    return [_host_address(hostvars, host) for host in hosts]


def outside_subnet(addresses: dict[str, str] | list[str], subnet: str) -> list[str]:
    """The addresses (values of a mapping, or a list) that are not host addresses of ``subnet``."""
    network = ipaddress.ip_network(subnet, strict=False)
    values = list(addresses.values()) if isinstance(addresses, dict) else list(addresses)
    return [str(value) for value in values if ipaddress.ip_address(str(value)) not in network]


class FilterModule:
    """photomatrix.rocketchat topology filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "endpoints": endpoints,
            "source_addresses": source_addresses,
            "host_addresses": host_addresses,
            "instance_alias": instance_alias,
            "instance_address": instance_address,
            "outside_subnet": outside_subnet,
        }
