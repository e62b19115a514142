"""NATS for several Rocket.Chat instances (roles/rocketchat/tasks/nats.yml, playbooks/group_vars/all/
nats.yml), checked on any inventory (`make verify [INVENTORY=…]`), read-only: docker inspect and files.

More than one instance over the rocketchat hosts: one photomatrix-nats runs, read-only, without
capabilities, published on its host address only when another rocketchat host needs it; its configuration
and every host's TRANSPORTER file are 0600 and the password is in no docker inspect. One instance: no NATS
container and no TRANSPORTER file anywhere. (The handshake with the password and a wrong one, by the alias
and on the published port: tests/roles/test_nats.py.)"""

from __future__ import annotations

import json
import shlex

import pytest

pytestmark = pytest.mark.infra

NATS = "photomatrix-nats"
ROCKETCHAT = "photomatrix-rocketchat"
PREFIX = "monolith+nats://rocketchat:"


def _instances(fleet) -> int:
    return sum(int(fleet.var(chat, "rocketchat_instance_count", 1)) for chat in fleet.group("rocketchat"))


def _root(fleet, host: str) -> str:
    return fleet.var(host, "photomatrix_root", "/srv/photomatrix")


def _exists(host, container: str) -> bool:
    return host.run(f"docker container inspect {shlex.quote(container)}").rc == 0


def _nats_hosts(fleet) -> list[str]:
    return [chat for chat in fleet.group("rocketchat") if _exists(fleet.hosts[chat], NATS)]


def test_nats_runs_where_several_instances_need_it_and_nowhere_else(fleet) -> None:
    chats = fleet.group("rocketchat")
    if not chats:
        pytest.skip("no rocketchat host in this inventory")
    several = _instances(fleet) > 1
    running = _nats_hosts(fleet)
    # One NATS (on the inventory's first rocketchat host) with several instances, none with one.
    assert len(running) == (1 if several else 0), f"photomatrix-nats runs on {running or 'no host'}"
    for chat in chats:
        transporter = fleet.hosts[chat].file(f"{_root(fleet, chat)}/secrets/rocketchat/transporter")
        assert transporter.exists == several, f"{chat}: TRANSPORTER file {'missing' if several else 'left'}"


def test_nats_is_locked_down_and_its_password_only_in_files(fleet) -> None:
    chats = fleet.group("rocketchat")
    if not chats or _instances(fleet) < 2:
        pytest.skip("one Rocket.Chat instance: no NATS")
    (first,) = _nats_hosts(fleet)
    host = fleet.hosts[first]
    config = host.file(f"{_root(fleet, first)}/secrets/nats/nats.conf")
    assert config.mode & 0o077 == 0, f"{first}: NATS' configuration is readable by others"
    info = json.loads(host.check_output(f"docker inspect {NATS}"))[0]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    published = {port: bound for port, bound in (info["NetworkSettings"]["Ports"] or {}).items() if bound}
    assert bool(published) == (len(chats) > 1), f"{first}: NATS publishes {published}"
    for chat in chats:
        transporter = fleet.hosts[chat].file(f"{_root(fleet, chat)}/secrets/rocketchat/transporter")
        assert transporter.mode & 0o077 == 0, f"{chat}: TRANSPORTER is readable by others"
        url = transporter.content_string.strip()
        assert url.startswith(PREFIX), f"{chat}: TRANSPORTER is not monolith+nats:// with the role's user"
        password = url[len(PREFIX) :].split("@", 1)[0]
        assert password not in json.dumps(info), f"{first}: docker inspect shows NATS' password"
        rocketchat = fleet.hosts[chat].check_output(f"docker inspect {ROCKETCHAT}")
        assert password not in rocketchat, f"{chat}: docker inspect shows TRANSPORTER's password"
