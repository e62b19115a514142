"""Credential rotations (`make rotate WHAT=…`, playbooks/rotate.yml), issue 16.

On the deployed stack (`make drill`: they change credentials and restart containers): for each WHAT the
old credential is refused afterwards, the new one works, every consumer was restarted or reloaded and
runs healthy, and the stored secrets are well-formed 0600 files. The three credentials only the bot
consumes rotate in one run (`make rotate WHAT=erp-key,rocketchat-token,alerts-token`: one bot restart,
as the runbook allows); the CA, which restarts the proxy and the blackbox exporter too, in its own.

Without a stack (`integration`): the playbook refuses an unknown or missing WHAT, production without
CONFIRM=true, and a CA rotation without the internal CA, before it touches anything (its hosts are
unreachable loopback addresses, so a check that let the run through would fail loudly).
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from plugins.infra import ALERTMANAGER_TO_BOT, Stack, container_python, docker_health, docker_inspect

from ops.figures import append_record

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = "photomatrix-alertmanager"
BLACKBOX = "photomatrix-blackbox-exporter"


def make_rotate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The documented command (`-o .venv/.installed`: the venv is the one running these tests)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "rotate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---------------------------------------------------------------------------------- without a stack


@pytest.fixture
def unreachable_inventory(tmp_path: Path):
    """An inventory shaped like inventory/local whose one host is a closed loopback port."""

    def make(environment: str, cert_mode: str = "selfsigned", store: bool = True) -> Path:
        inventory = tmp_path / f"inventory-{environment}-{cert_mode}-{'store' if store else 'no-store'}"
        (inventory / "group_vars").mkdir(parents=True)
        groups = ["docker_hosts", "proxy", "rocketchat", "mongodb", "erp", "bots", "monitoring"]
        hosts = {
            "all": {
                "children": {group: {"hosts": {"rotate-test-host": None}} for group in groups},
                "vars": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh"},
            }
        }
        (inventory / "hosts.yml").write_text(json.dumps(hosts))
        (inventory / "group_vars" / "all.yml").write_text(
            json.dumps(
                {
                    "photomatrix_environment": environment,
                    "tls_proxy_cert_mode": cert_mode,
                    "photomatrix_root": str(tmp_path / "root"),
                    "photomatrix_bootstrap_secrets_dir": str(tmp_path / "store") if store else "",
                }
            )
        )
        return inventory

    return make


def refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Nothing rotated" in output or "usage: make rotate" in output, output[-3000:]
    for phrase in phrases:
        assert phrase in output, output[-3000:]
    assert "UNREACHABLE" not in output, "a host was contacted"


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_unknown_or_missing_what_is_refused_before_anything_runs(
    unreachable_inventory, tmp_path: Path
) -> None:
    inventory = unreachable_inventory("staging")
    refused(
        make_rotate("WHAT=passwords", f"INVENTORY={inventory}"), "WHAT=passwords", "erp-key, rocketchat-token"
    )
    refused(make_rotate(f"INVENTORY={inventory}"), "usage: make rotate WHAT=")
    # Several at once: each must be known, none twice.
    refused(make_rotate("WHAT=erp-key,passwords", f"INVENTORY={inventory}"), "WHAT=erp-key,passwords")
    refused(make_rotate("WHAT=ca,ca", f"INVENTORY={inventory}"), "without repeats")
    direct = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), "playbooks/rotate.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    refused(direct, "WHAT=(empty)")
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "root").exists()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_production_needs_confirm_and_ca_needs_the_internal_ca(unreachable_inventory, tmp_path: Path) -> None:
    production = unreachable_inventory("production")
    refused(make_rotate("WHAT=alerts-token", f"INVENTORY={production}"), "marked production", "CONFIRM=true")
    # Confirmed, the checks pass and the run goes on to the hosts: here a closed port, so it fails there.
    confirmed = make_rotate("WHAT=alerts-token", f"INVENTORY={production}", "CONFIRM=true")
    assert confirmed.returncode != 0
    assert "Nothing rotated" not in confirmed.stdout + confirmed.stderr
    assert "UNREACHABLE" in confirmed.stdout + confirmed.stderr
    # Issue 10: the internal CA exists in every certificate mode, so WHAT=ca passes the checks with ACME
    # too (and goes on to the hosts); only an inventory without a controller-side store has none.
    acme = make_rotate("WHAT=ca", f"INVENTORY={unreachable_inventory('staging', cert_mode='acme')}")
    assert acme.returncode != 0
    assert "Nothing rotated" not in acme.stdout + acme.stderr
    assert "UNREACHABLE" in acme.stdout + acme.stderr
    no_store = unreachable_inventory("staging", store=False)
    refused(make_rotate("WHAT=ca", f"INVENTORY={no_store}"), "no internal CA to rotate")
    refused(make_rotate("WHAT=alerts-token,ca", f"INVENTORY={no_store}"), "no internal CA to rotate")
    assert not (tmp_path / "root").exists()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_bot_role_refuses_to_install_an_empty_secret(unreachable_inventory, tmp_path: Path) -> None:
    """An empty key in the store (a broken earlier run) stops the chatbot role before the bot's host."""
    inventory = unreachable_inventory("staging")
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    (store / "erp-bot-user-id").write_text("bot-user-id\n")
    (store / "erp-bot-token").write_text("a-token\n")
    (store / "erp-bot-api-key").write_text("\n")
    play = tmp_path / "play.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": "The bot's secrets",
                    "hosts": "bots",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Install them",
                            "ansible.builtin.include_role": {"name": "chatbot", "tasks_from": "secrets"},
                        }
                    ],
                }
            ]
        )
    )
    result = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), str(play)],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"{store / 'erp-bot-api-key'} is missing or empty on the control node" in output, output[-3000:]
    assert "UNREACHABLE" not in output, "the host was contacted before the check"
    (store / "erp-bot-api-key").write_text("erp_" + "k" * 43 + "\n")
    passed = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), str(play)],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # With every secret present the check passes and the role goes on to the host (unreachable here).
    assert "is missing or empty" not in passed.stdout + passed.stderr
    assert "UNREACHABLE" in passed.stdout + passed.stderr


# ---------------------------------------------------------------------------------- the deployed stack


def started(name: str) -> str:
    return docker_inspect(name)["State"]["StartedAt"]


def assert_healthy(*names: str) -> None:
    for name in names:
        assert docker_health(name) == "healthy", name


def secret(path: Path) -> str:
    """A stored secret: a 0600 file with a non-empty value."""
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"{path}: {oct(mode)}"
    value = path.read_text().strip()
    assert value, f"{path} is empty"
    return value


ROTATION_SECONDS: list[float] = []
TOGETHER = ("erp-key", "rocketchat-token", "alerts-token")


def rotate(what: str) -> None:
    began = time.monotonic()
    result = make_rotate(f"WHAT={what}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ROTATION_SECONDS.append(time.monotonic() - began)
    print(f"\nmake rotate WHAT={what}: {ROTATION_SECONDS[-1]:.0f} s")


@pytest.fixture(scope="module")
def rotation_time() -> Iterator[None]:
    """The rotation drill's total time, recorded for ops/figures.json when every rotation ran."""
    yield
    if len(ROTATION_SECONDS) == 2:
        append_record("drill.rotations_s", sum(ROTATION_SECONDS))
        print(f"\n[drill rotations] {len(TOGETHER) + 1} rotations in {sum(ROTATION_SECONDS):.0f} s")


@pytest.fixture(scope="module")
def rotated_together(stack: Stack, rotation_time: None) -> dict[str, str]:
    """The old credentials and the bot's start time, then one run rotating all three."""
    bootstrap = stack.root / "secrets" / "bootstrap"
    before = {
        "erp-key": secret(bootstrap / "erp-bot-api-key"),
        "rocketchat-token": secret(bootstrap / "erp-bot-token"),
        "alerts-token": secret(bootstrap / "bot-alerts-token"),
        "bot-started": started(stack.bot),
    }
    rotate(",".join(TOGETHER))
    return before


def eventually(check, timeout: float = 30.0):
    """check() until it returns truthy (the ERP caches key lookups for ERP_API_KEY_CACHE_SECONDS)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def erp_status_from_bot(stack: Stack, key: str) -> int:
    """GET /positions with KEY through the proxy, from the bot's container (the allowlisted address)."""
    code = f"""
import httpx
r = httpx.get({stack.proxy_internal_url + "/api/bot/v1/positions"!r}, headers={{"X-API-Key": {key!r}}},
              verify="/etc/bot/ca.crt", timeout=10)
print(r.status_code)
"""
    return int(container_python(stack.bot, code).strip())


@pytest.mark.infra
@pytest.mark.drill
@pytest.mark.timeout(600)
def test_rotate_erp_key(stack: Stack, rotated_together: dict[str, str]) -> None:
    store = stack.root / "secrets" / "bootstrap" / "erp-bot-api-key"
    installed = stack.root / "secrets" / "bot" / "erp_api_key"
    old, before = rotated_together["erp-key"], rotated_together["bot-started"]

    new = secret(store)
    assert new != old
    assert new.startswith("erp_")
    assert secret(installed) == new, "the bot's copy is not the new key"
    assert started(stack.bot) != before, "the bot was not restarted"
    assert_healthy(stack.bot, stack.erp)
    assert eventually(lambda: erp_status_from_bot(stack, old) == 401), "the old key still works"
    assert erp_status_from_bot(stack, new) == 200
    listing = subprocess.run(
        ["docker", "exec", stack.erp, "python", "-m", "erp", "keys", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    active = [line.split()[0] for line in listing.splitlines()[1:] if line.rstrip().endswith(" -")]
    assert [name for name in active if name == "bot" or name.startswith("bot.")] == ["bot"], listing


@pytest.mark.infra
@pytest.mark.drill
@pytest.mark.timeout(600)
def test_rotate_rocketchat_token(stack: Stack, rotated_together: dict[str, str]) -> None:
    store = stack.root / "secrets" / "bootstrap" / "erp-bot-token"
    installed = stack.root / "secrets" / "bot" / "rocketchat_token"
    user_id = secret(stack.root / "secrets" / "bootstrap" / "erp-bot-user-id")
    old, before = rotated_together["rocketchat-token"], rotated_together["bot-started"]

    new = secret(store)
    assert new != old
    assert secret(installed) == new, "the bot's copy is not the new token"
    assert started(stack.bot) != before, "the bot was not restarted"
    assert_healthy(stack.bot)  # its readiness includes Rocket.Chat, with the token it read at start

    def me(token: str) -> int:
        headers = {"X-User-Id": user_id, "X-Auth-Token": token}
        return httpx.get(
            f"{stack.base_url}/api/v1/me", headers=headers, verify=stack.ssl_context(), timeout=10
        ).status_code

    assert me(old) == 401, "the old token still works"
    assert me(new) == 200


@pytest.mark.infra
@pytest.mark.drill
@pytest.mark.timeout(600)
def test_rotate_alerts_token(stack: Stack, rotated_together: dict[str, str]) -> None:
    store = stack.root / "secrets" / "bootstrap" / "bot-alerts-token"
    installed = stack.root / "secrets" / "bot" / "alerts_token"
    alertmanager_copy = stack.root / "alertmanager" / "secrets" / "bot_token"
    old, before = rotated_together["alerts-token"], rotated_together["bot-started"]

    new = secret(store)
    assert new != old
    assert len(new) == 48
    assert secret(installed) == new, "the bot's copy is not the new token"
    assert secret(alertmanager_copy) == new, "Alertmanager's file is not the new token"
    assert started(stack.bot) != before, "the bot was not restarted"
    assert_healthy(stack.bot)

    def post_from_alertmanager(token_code: str) -> str:
        """POST an empty notification from Alertmanager's container: 401 bad token, 400 good token."""
        code = (
            ALERTMANAGER_TO_BOT
            + f"""
token = {token_code}
headers = {{"Authorization": "Bearer " + token, "Content-Type": "application/json"}}
request = urllib.request.Request(url, data=b"{{}}", method="POST", headers=headers)
try:
    print(urllib.request.urlopen(request, timeout=10, context=context).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""
        )
        out = subprocess.run(
            ["docker", "exec", ALERTMANAGER, "python3", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip()

    assert post_from_alertmanager(repr(old)) == "401", "the old token still works"
    # The file Alertmanager itself sends (credentials_file, read at each notification).
    assert post_from_alertmanager("open('/etc/alertmanager/secrets/bot_token').read().strip()") == "400"


def fingerprint(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def handshake(stack: Stack, cafile: Path) -> bool:
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        httpx.get(f"{stack.base_url}/api/info", verify=context, timeout=10)
    except httpx.ConnectError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return False
        raise
    return True


@pytest.mark.infra
@pytest.mark.drill
@pytest.mark.timeout(600)
def test_rotate_ca(stack: Stack, tmp_path: Path, rotation_time: None) -> None:
    old_ca = tmp_path / "old-ca.crt"
    old_ca.write_text(stack.ca_file.read_text())
    assert handshake(stack, old_ca)
    bot_before = started(stack.bot)
    blackbox_before = started(BLACKBOX) if BLACKBOX in stack.containers else None

    rotate("ca")

    new_pem = stack.ca_file.read_text()
    assert fingerprint(new_pem) != fingerprint(old_ca.read_text())
    assert not handshake(stack, old_ca), "the proxy still serves a certificate of the old CA"
    assert handshake(stack, stack.ca_file)
    store = stack.root / "secrets" / "bootstrap" / "ca.crt"
    assert fingerprint(secret(store)) == fingerprint(new_pem)
    assert (stack.root / "bot" / "ca.crt").read_text() == new_pem, "the bot's CA is the old one"
    assert started(stack.bot) != bot_before, "the bot was not restarted"
    # The proxy took the new certificate: the handshakes above (it restarts, or reloads in place).
    # Ready = it reaches the ERP through the proxy, verifying the new certificate with its new CA.
    assert_healthy(stack.bot, stack.proxy)
    if blackbox_before is not None:  # the monitoring layer probes the proxy with the CA too
        assert (stack.root / "blackbox" / "ca.crt").read_text() == new_pem, (
            "the blackbox exporter's CA is old"
        )
        assert started(BLACKBOX) != blackbox_before, "the blackbox exporter was not restarted"
    assert not (stack.root / "pki.previous").exists(), "the old CA's key was left behind"
    # Issue 10: the ERP's HTTPS certificate is re-signed by the new CA (the proxy now trusts only that
    # one), with the new CA for its health check, every replica healthy with them; Prometheus checks the
    # ERP against the new CA too.
    erp_secrets = stack.root / "secrets" / "erp"
    if (erp_secrets / "tls.crt").exists():
        assert fingerprint(secret(erp_secrets / "tls-ca.crt")) == fingerprint(new_pem)
        erp_cert = x509.load_pem_x509_certificate(secret(erp_secrets / "tls.crt").encode())
        new_ca = x509.load_pem_x509_certificate(new_pem.encode())
        erp_cert.verify_directly_issued_by(new_ca)  # raises when the old CA signed it
        assert_healthy(*[name for name in stack.containers if name.startswith(stack.erp)])
        erp_ca_of_prometheus = stack.root / "monitoring" / "erp-ca.crt"
        if erp_ca_of_prometheus.exists():
            assert erp_ca_of_prometheus.read_text() == new_pem, "Prometheus checks the ERP against the old CA"
