"""The proxy's two containers (roles/tls_proxy): nginx in the network namespace of its holder, which
publishes the ports. A drill (`make drill`, never production): the holder restarted on its own leaves
nginx in the holder's previous namespace; the holder's health check must say so and the proxy play must
mend it. The swap of a new nginx beside the running one under load is the upgrade drill's
(test_drill_upgrade.py: every request must get an HTTP answer while the proxy is upgraded or rolled back)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from plugins.infra import Stack, docker_health, docker_inspect, health_check_argv, run_proxy_play

from ops.scripts import wait_healthy

pytestmark = [pytest.mark.infra, pytest.mark.drill]


def answers(stack: Stack) -> bool:
    """The public HTTP port leads to an nginx (its health page, through the holder's published port)."""
    try:
        return httpx.get(f"http://127.0.0.1:{stack.http_port}/nginx-health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def own_check_passes(name: str) -> bool:
    """NAME's own health check, run now inside it (roles/common's wait script's run_check)."""
    argv = health_check_argv(docker_inspect(name))
    assert argv, f"{name} has no health check"
    return wait_healthy().run_check(name, argv, 30)["ExitCode"] == 0


def test_nginx_runs_in_the_holders_namespace_which_hands_over_queued_connections(stack: Stack) -> None:
    holder = docker_inspect(stack.proxy_net)
    nginx = docker_inspect(stack.proxy)
    assert nginx["HostConfig"]["NetworkMode"] == f"container:{holder['Id']}"
    assert not nginx["HostConfig"]["PortBindings"]
    assert holder["HostConfig"]["Sysctls"] == {"net.ipv4.tcp_migrate_req": "1"}
    assert nginx["Config"]["StopSignal"] == "SIGQUIT"
    assert own_check_passes(stack.proxy_net)
    assert own_check_passes(stack.proxy)


def test_a_holder_restarted_on_its_own_is_seen_and_mended_by_the_proxy_play(stack: Stack) -> None:
    assert answers(stack), "the proxy does not answer before the drill"
    nginx_id = docker_inspect(stack.proxy)["Id"]
    restarted = subprocess.run(
        ["docker", "restart", stack.proxy_net], capture_output=True, text=True, timeout=60, check=False
    )
    assert restarted.returncode == 0, restarted.stderr
    try:
        time.sleep(1)
        # nginx still runs, healthy by its own socket, but nothing listens behind the published ports.
        assert not answers(stack), "the public port still answers after the holder's restart"
        assert own_check_passes(stack.proxy)
        assert not own_check_passes(stack.proxy_net), "the holder's check passes, nothing behind its ports"

        mended = run_proxy_play(stack)
        assert mended.returncode == 0, mended.stdout[-4000:]
        folded = " ".join(mended.stdout.split())
        assert "Restart nginx left in an earlier namespace of its holder" in folded
        assert answers(stack), "the proxy play did not bring the public port back"
        assert docker_inspect(stack.proxy)["Id"] == nginx_id  # restarted, not re-created
        assert docker_health(stack.proxy_net) == "healthy"

        again = run_proxy_play(stack)
        assert again.returncode == 0, again.stdout[-4000:]
        assert "changed=0" in again.stdout, again.stdout[-3000:]
    finally:
        if not answers(stack):
            subprocess.run(["docker", "restart", stack.proxy], capture_output=True, timeout=120, check=False)
