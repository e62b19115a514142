"""Every container runs healthy, hardened, and only the proxy's network holder publishes ports (80/443)."""

from __future__ import annotations

import pytest
from plugins.infra import Stack, docker_health, docker_inspect

pytestmark = pytest.mark.infra


def test_expected_containers_run(stack: Stack) -> None:
    assert {stack.proxy, stack.proxy_net, stack.rocketchat, stack.erp, stack.bot} <= set(stack.containers)


def test_containers_healthy_with_restart_policy_and_limits(stack: Stack) -> None:
    for name in stack.containers:
        info = docker_inspect(name)
        assert info["State"]["Running"], name
        assert docker_health(name) == "healthy", name
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", name
        assert info["HostConfig"]["Memory"] > 0, f"{name} has no memory limit"
        log = info["HostConfig"]["LogConfig"]
        assert log["Type"] == "json-file", name
        assert log["Config"].get("max-size"), f"{name} logs are not rotated"


def test_project_containers_are_non_root_and_read_only(stack: Stack) -> None:
    for name in (stack.proxy, stack.proxy_net, stack.erp, stack.bot):
        info = docker_inspect(name)
        assert info["Config"]["User"] not in ("", "0", "root", "0:0"), f"{name} runs as root"
        assert info["HostConfig"]["ReadonlyRootfs"], f"{name} has a writable root filesystem"


def test_only_the_proxys_network_holder_publishes_and_only_80_and_443(stack: Stack) -> None:
    published: dict[str, set[str]] = {}
    for name in stack.containers:
        bindings = docker_inspect(name)["HostConfig"]["PortBindings"] or {}
        published[name] = {
            f"{binding['HostIp'] or '0.0.0.0'}:{binding['HostPort']}"
            for spec in bindings.values()
            for binding in spec or []
        }
    assert published.pop(stack.proxy_net) == {"0.0.0.0:80", "0.0.0.0:443"}
    assert all(not ports for ports in published.values()), published


def test_rocketchat_and_mongodb_are_not_reachable_from_the_host(stack: Stack, host) -> None:
    assert not host.socket("tcp://0.0.0.0:3000").is_listening
    assert not host.socket("tcp://0.0.0.0:27017").is_listening
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_secrets_not_in_the_environment_of_project_containers(stack: Stack) -> None:
    for name in (stack.erp, stack.bot):
        env = docker_inspect(name)["Config"]["Env"]
        names = {item.split("=", 1)[0] for item in env}
        secrets = {"ERP_SECRET_KEY", "ERP_ALERT_WEBHOOK_URL", "BOT_ERP_API_KEY", "BOT_ROCKETCHAT_TOKEN"}
        assert not names & secrets, names
        assert any(item.endswith("_FILE=" + item.split("_FILE=", 1)[-1]) for item in env if "_FILE=" in item)


def test_secret_files_are_private(stack: Stack, host) -> None:
    secret_dir = stack.root / "secrets"
    files = host.run(f"find {secret_dir} -type f").stdout.split()
    assert files, "no secret files found"
    files.append(str(stack.root / "pki" / "server" / "server.key"))
    files.append(str(stack.root / "pki" / "private" / "ca.key"))
    for path in files:
        mode = host.file(path).mode
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_the_erp_reads_its_alerts_webhook_from_the_mounted_file(stack: Stack, host) -> None:
    """The URL carries the webhook's token: a mounted 0600 file, and the ERP really picks it up."""
    env = docker_inspect(stack.erp)["Config"]["Env"]
    assert "ERP_ALERT_WEBHOOK_URL_FILE=/run/secrets/erp/alert_webhook_url" in env
    probe = "from erp.settings import get_settings; print(get_settings().alert_webhook_url is not None)"
    result = host.run(f"docker exec {stack.erp} python -c '{probe}'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "True"
