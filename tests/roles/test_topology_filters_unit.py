"""photomatrix.rocketchat topology filters: same host by alias, other hosts by host address."""

from __future__ import annotations

import pytest
from ansible_collections.photomatrix.rocketchat.plugins.filter.topology import (
    endpoints,
    host_addresses,
    instance_address,
    instance_alias,
    outside_subnet,
    source_addresses,
)

pytestmark = pytest.mark.unit

HOSTVARS = {
    "edge": {"ansible_host": "10.77.0.10"},
    "erp1": {"ansible_host": "10.77.0.31", "photomatrix_host_address": "192.168.5.31"},
    "erp2": {"ansible_host": "10.77.0.32"},
    "chat": {"ansible_host": "10.77.0.11", "rocketchat_instance_count": 2},
    "named": {},
}


def test_endpoints_use_aliases_here_and_host_addresses_elsewhere() -> None:
    assert endpoints(["erp1", "erp2"], HOSTVARS, "erp2", "erp-api", 8000) == [
        "192.168.5.31:8000",
        "erp-api:8000",
    ]


def test_instances_get_consecutive_published_ports_and_numbered_aliases() -> None:
    count = "rocketchat_instance_count"
    assert endpoints(["chat"], HOSTVARS, "edge", "rocketchat", 3000, count) == [
        "10.77.0.11:3000",
        "10.77.0.11:3001",
    ]
    assert endpoints(["chat"], HOSTVARS, "chat", "rocketchat", 3000, count) == [
        "rocketchat:3000",
        "rocketchat-2:3000",
    ]
    assert instance_alias("rocketchat", 0) == "rocketchat"


def test_instances_here_with_a_fixed_address_are_named_by_consecutive_addresses() -> None:
    hostvars = {**HOSTVARS, "erp2": {"ansible_host": "10.77.0.32", "erp_api_replicas": 2}}
    count = "erp_api_replicas"
    assert endpoints(["erp2"], hostvars, "erp2", "erp-api", 8000, count, "10.250.0.30") == [
        "10.250.0.30:8000",
        "10.250.0.31:8000",
    ]
    # Elsewhere the host address and published ports, as without it; no address: the aliases.
    assert endpoints(["erp2"], hostvars, "edge", "erp-api", 8000, count, "10.250.0.30") == [
        "10.77.0.32:8000",
        "10.77.0.32:8001",
    ]
    no_address = endpoints(["erp2"], hostvars, "erp2", "erp-api", 8000, count, "")
    assert no_address == ["erp-api:8000", "erp-api-2:8000"]
    assert instance_address("10.250.0.30", 0) == "10.250.0.30"


def test_a_bad_instance_count_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        endpoints(["x"], {"x": {"n": 0}}, "y", "a", 1, "n")


def test_sources_are_the_container_address_here_and_the_host_address_elsewhere() -> None:
    assert source_addresses(["edge"], HOSTVARS, "edge", "10.250.0.10") == ["10.250.0.10"]
    assert source_addresses(["edge"], HOSTVARS, "erp1", "10.250.0.10") == ["10.77.0.10"]


def test_host_addresses_fall_back_to_the_inventory_name() -> None:
    assert host_addresses(["erp1", "named"], HOSTVARS) == ["192.168.5.31", "named"]


def test_outside_subnet_names_host_addresses_given_as_container_addresses() -> None:
    assert outside_subnet({"proxy": "10.250.0.10", "bot": "10.0.10.31"}, "10.250.0.0/24") == ["10.0.10.31"]
    assert outside_subnet(["10.250.0.20"], "10.250.0.0/24") == []
