"""The lab, really started: hosts reached over SSH, their own Docker Engines pulling from the TLS
registry and publishing ports, a warm second `up`, and a `down` that removes only lab objects."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab import docker
from lab.control import CERTS_D
from lab.cycle import this_machines_stack
from lab.topology import LABEL, Lab, LabConfigError, load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).resolve().parent / "inventory"
# Each run has its own lab (name, subnet, public name), so two test runs on one machine never meet.
RUN = os.getpid() % 200 + 20
PUBLIC_NAME = f"web.pmlabt{RUN}.test"


@functools.cache
def lab_inventory() -> Path:
    """This run's copy of the template (made when a test first needs it; the lab fixture removes it)."""
    inventory = Path(tempfile.mkdtemp(prefix="pmlab-tests-"))
    for source in TEMPLATE.rglob("*.yml"):
        target = inventory / source.relative_to(TEMPLATE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            source.read_text()
            .replace("pmlabtest", f"pmlabt{RUN}")
            .replace("10.78.0.", f"10.78.{RUN}.")
            .replace("tests/lab/inventory/", f"{inventory}/")
        )
    return inventory


def run_lab(action: str, inventory: Path | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """up and down as documented (`make lab-up` / `make lab-down` with LAB_INVENTORY), status directly."""
    inventory = inventory or lab_inventory()
    if action in ("up", "down"):
        argv = ["make", "--no-print-directory", f"lab-{action}", f"LAB_INVENTORY={inventory}"]
    else:
        argv = [sys.executable, "-m", "lab", action, "-i", str(inventory)]
    return subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ansible(lab: Lab, pattern: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """An ad-hoc Ansible command over SSH against the lab's hosts."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i", str(lab.inventory), pattern, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_host_gets(lab: Lab, host: str, url: str) -> None:
    """HOST fetches URL with its own Python (its system's CA bundle for https) and gets 200."""
    probe = ansible(
        lab, host, "-m", "ansible.builtin.command", "-a",
        f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{url}', timeout=10).status)\"",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "200" in probe.stdout


@pytest.fixture(scope="module")
def lab() -> Lab:
    config = load(lab_inventory())
    first = run_lab("up")
    if first.returncode != 0:
        run_lab("down")
        pytest.fail(f"lab up failed:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}")
    yield config
    run_lab("down")
    shutil.rmtree(lab_inventory(), ignore_errors=True)


pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]


def _inventory(tmp_path: Path, hosts: str, lab_vars: str) -> Path:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.yml").write_text(textwrap.dedent(hosts))
    (tmp_path / "group_vars" / "all.yml").write_text(textwrap.dedent(lab_vars))
    return tmp_path


ONE_HOST = "all: {hosts: {a: {ansible_host: 10.79.0.7}}}"
GOOD_VARS = "lab_name: pmlabx\nlab_subnet: 10.79.0.0/24\ncontainer_registry: '10.79.0.5:5000'\n"


@pytest.mark.parametrize(
    ("hosts", "lab_vars", "message"),
    [
        ("all: {hosts: {a: {ansible_host: 10.80.0.3}}}", GOOD_VARS, "not a host address of 10.79.0.0/24"),
        ("all: {hosts: {a: {ansible_host: 10.79.0.1}}}", GOOD_VARS, "other than 10.79.0.1"),
        ("all: {hosts: {a: {ansible_host: 10.79.0.5}}}", GOOD_VARS, "already container_registry's address"),
        (
            "all: {hosts: {a: {ansible_host: 10.79.0.7}, b: {ansible_host: 10.79.0.7}}}",
            GOOD_VARS,
            "already a's address",
        ),
        (
            "all: {hosts: {a: {ansible_host: 10.79.0.7}}}",
            GOOD_VARS.replace("pmlabx", "photomatrix"),
            "lab_name",
        ),
        ("all: {hosts: {a: {ansible_host: chat.example}}}", GOOD_VARS, "not an IPv4 address"),
        (
            "all: {hosts: {a: {ansible_host: 10.79.0.7}}}",
            GOOD_VARS.replace("'10.79.0.5:5000'", "registry.example"),
            "expected ADDRESS:PORT",
        ),
        (
            "all: {hosts: {a: {ansible_host: 10.79.0.7}}}",
            GOOD_VARS + "lab_acme: 10.79.0.7\n",
            "already a's address",
        ),
        (ONE_HOST, GOOD_VARS + "lab_acme: 10.79.0.5\n", "already container_registry's address"),
        (
            "all: {hosts: {a: {ansible_host: 10.79.0.7}}}",
            GOOD_VARS + "lab_acme: 10.80.0.6\n",
            "not a host address",
        ),
        (
            "all: {hosts: {a: {ansible_host: 10.79.0.7}}}",
            GOOD_VARS + "lab_acme: acme.example\n",
            "not an IPv4",
        ),
    ],
)
def test_a_bad_inventory_is_refused_with_a_clear_error(tmp_path, hosts, lab_vars, message):
    inventory = _inventory(tmp_path, hosts, lab_vars)
    with pytest.raises(LabConfigError, match=message):
        load(inventory)
    result = run_lab("up", inventory, timeout=120)
    assert result.returncode != 0
    assert message.split()[0] in result.stderr
    # Refused before anything was created.
    assert docker.inspect("network", "pmlabx-net") is None
    assert not (inventory / ".lab").exists()


@pytest.mark.parametrize(
    ("target", "variable", "started"),
    [("test-multi", "MULTI_INVENTORY", "lab multi:"), ("test-infra", "SINGLE_INVENTORY", "lab cycle")],
)
def test_make_test_cycles_refuse_a_lab_of_their_inventory_that_exists(tmp_path, target, variable, started):
    """The guard in front of `make test-multi`, `make test-infra` (and test-delivery): a container of the
    lab, even one only created, makes it refuse before the cycle starts; a status that cannot be read
    refuses too."""
    name = f"pmguard{RUN}"
    inventory = _inventory(
        tmp_path,
        "all: {hosts: {h1: {ansible_host: 10.81.0.7}}}",
        f"lab_name: {name}\nlab_subnet: 10.81.0.0/24\ncontainer_registry: '10.81.0.5:5000'\n",
    )
    image = f"{name}/empty:1"
    decoy = f"{name}-h1"

    def make_test_cycle(inv: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            # MULTI_ARGS: were the guard to let lab.multi through, it would stop after `lab up`.
            ["make", "--no-print-directory", target, f"{variable}={inv}", "MULTI_ARGS=--to up"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    empty = subprocess.run(["tar", "-cf", "-", "--files-from", "/dev/null"], capture_output=True, check=True)
    subprocess.run(
        ["docker", "import", "-", image], input=empty.stdout, capture_output=True, check=True, timeout=120
    )
    try:
        docker.run(
            ["create", "--name", decoy, "--label", f"{LABEL}={name}", "--network", "none", image, "/none"]
        )
        refused = make_test_cycle(inventory)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "refuses to run while that lab runs" in refused.stderr
        assert decoy in refused.stderr  # what it found, named
        assert started not in refused.stdout + refused.stderr  # the cycle never started
        assert docker.inspect("container", decoy) is not None  # and nothing was removed
        assert "Traceback" not in refused.stderr
        # A status that cannot be read (an inventory that does not load) refuses as well.
        (tmp_path / "broken").mkdir()
        broken = _inventory(
            tmp_path / "broken", "all: {hosts: {h1: {ansible_host: 10.81.0.1}}}", "lab_name: x\n"
        )
        unread = make_test_cycle(broken)
        assert unread.returncode == 2, unread.stdout + unread.stderr
        assert started not in unread.stdout + unread.stderr
    finally:
        docker.run(["rm", "--force", decoy], check=False)
        docker.run(["image", "rm", image], check=False)


def test_the_cycle_sees_a_change_to_this_machines_stack():
    """lab.cycle compares this machine's own stack before and after (it must be untouched): a container
    that appears, goes or is re-created is a difference. A prefix of its own stands for `photomatrix-`."""
    prefix = f"pmstack{RUN}-"
    image = f"pmstack{RUN}/empty:1"
    empty = subprocess.run(["tar", "-cf", "-", "--files-from", "/dev/null"], capture_output=True, check=True)
    subprocess.run(
        ["docker", "import", "--change", "CMD [\"/none\"]", "-", image],
        input=empty.stdout, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    try:
        assert this_machines_stack(prefix) == ""
        docker.run(["create", "--name", f"{prefix}one", "--network", "none", image])
        created = this_machines_stack(prefix)
        assert f"/{prefix}one " in created
        assert this_machines_stack(prefix) == created  # read twice, unchanged: equal
        # Re-created under the same name (`make down`, then `make up`): another container.
        docker.run(["rm", f"{prefix}one"])
        docker.run(["create", "--name", f"{prefix}one", "--network", "none", image])
        assert this_machines_stack(prefix) != created
    finally:
        docker.run(["rm", "--force", f"{prefix}one"], check=False)
        docker.run(["image", "rm", image], check=False)
    assert this_machines_stack(prefix) == ""


def test_inventory_lab_has_the_production_shape():
    lab = load(ROOT / "inventory" / "lab")
    groups = json.loads(
        subprocess.run(
            [str(Path(ROOT / ".venv/bin/ansible-inventory")), "-i", str(lab.inventory), "--list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    members = {group: set(groups.get(group, {}).get("hosts", [])) for group in groups if group != "_meta"}
    assert members["proxy"] == {"edge"}
    assert members["rocketchat"] == {"chat"}
    assert members["mongodb"] == {"chat", "db1", "mon"}  # sharing hosts with other roles
    assert members["erp"] == {"erp1", "erp2"}
    assert members["db"] == {"db1"}
    assert members["bots"] == {"bot"}
    assert members["monitoring"] == {"mon"}
    assert set(lab.hosts) == {
        "edge",
        "chat",
        "erp1",
        "erp2",
        "db1",
        "bot",
        "mon",
    }
    assert lab.name == "pmlab"


def test_hosts_answer_ansible_over_ssh_as_deploy_with_sudo(lab):
    result = ansible(lab, "all", "-m", "ansible.builtin.command", "-a", "id -un")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("CHANGED") == len(lab.hosts)
    assert "root" in result.stdout
    # Each host is a container of this lab only, with the options the lab promises.
    for host, address in lab.hosts.items():
        info = docker.inspect("container", lab.container(host))
        assert info["Config"]["Labels"][LABEL] == lab.name
        assert info["HostConfig"]["Privileged"] is False
        assert "CAP_SYS_RESOURCE" in info["HostConfig"]["CapDrop"]
        assert info["NetworkSettings"]["Networks"][lab.network]["IPAddress"] == address


def test_ssh_refuses_unknown_host_keys_root_and_passwords(lab, tmp_path):
    address = next(iter(lab.hosts.values()))
    key = lab.state_dir / "ssh" / "id_ed25519"
    base = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    known = ["-o", f"UserKnownHostsFile={lab.state_dir / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes"]
    ok = subprocess.run(
        [*base, *known, f"deploy@{address}", "true"], capture_output=True, timeout=60, check=False
    )
    assert ok.returncode == 0, ok.stderr
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    unknown = subprocess.run(
        [
            *base,
            "-o",
            f"UserKnownHostsFile={empty}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"deploy@{address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 255
    assert "verification failed" in unknown.stderr
    root = subprocess.run(
        [*base, *known, f"root@{address}", "true"], capture_output=True, timeout=60, check=False
    )
    assert root.returncode == 255
    password = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "PreferredAuthentications=password",
            *known,
            f"deploy@{address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert password.returncode == 255
    assert "Permission denied" in password.stderr


def test_registry_speaks_tls_with_a_certificate_from_the_lab_ca(lab):
    url = f"https://{lab.registry}/v2/"
    context = ssl.create_default_context(cafile=str(lab.state_dir / "pki" / "ca.crt"))
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, timeout=10, context=ssl.create_default_context())
    # Plain HTTP gets nothing but a refusal.
    with pytest.raises(urllib.error.HTTPError, match="400"):
        urllib.request.urlopen(f"http://{lab.registry}/v2/_catalog", timeout=10)
    with urllib.request.urlopen(
        f"https://{lab.registry}/v2/_catalog", timeout=10, context=context
    ) as response:
        assert "photomatrix/debian-base" in json.load(response)["repositories"]


def test_the_acme_ca_speaks_tls_from_the_lab_ca_which_every_host_trusts(lab):
    """The lab's ACME CA (lab_acme) serves its directory and its root over TLS with a certificate from the
    lab CA; the hosts verify it with their system bundle, as servers verify Let's Encrypt's directory."""
    assert lab.acme, "tests/lab/inventory sets lab_acme"
    context = ssl.create_default_context(cafile=str(lab.state_dir / "pki" / "ca.crt"))
    with urllib.request.urlopen(lab.acme_directory, timeout=10, context=context) as response:  # noqa: S310
        directory = json.load(response)
    assert directory["newOrder"].startswith(f"https://{lab.acme}:")
    with urllib.request.urlopen(lab.acme_roots, timeout=10, context=context) as response:  # noqa: S310
        assert response.read().startswith(b"-----BEGIN CERTIFICATE-----")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(lab.acme_directory, timeout=10, context=ssl.create_default_context())  # noqa: S310
    for host in sorted(lab.hosts):
        assert_host_gets(lab, host, lab.acme_directory)


def test_a_host_pulls_by_reference_and_its_containers_publish_ports(lab):
    tags = docker.run(
        ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{lab.registry}/photomatrix/*"]
    )
    ref = tags.split()[0]
    h1, h2 = sorted(lab.hosts)
    run = ansible(
        lab, h1, "-m", "ansible.builtin.shell", "-a",
        f"docker pull -q {ref} && docker rm -f labprobe >/dev/null 2>&1; "
        f"docker run -d --name labprobe -p 18080:8080 {ref} python3 -m http.server 8080",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    try:
        h1_address = lab.hosts[h1]
        for _ in range(30):
            try:
                with urllib.request.urlopen(f"http://{h1_address}:18080/", timeout=5) as response:
                    assert response.status == 200
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        else:
            pytest.fail(f"{h1}'s published port 18080 never answered")
        # The lab's public name resolves to h1 here and on the hosts.
        assert socket.gethostbyname(PUBLIC_NAME) == h1_address
        with urllib.request.urlopen(f"http://{PUBLIC_NAME}:18080/", timeout=10) as response:
            assert response.status == 200
        # Host to host over the lab network, by public name.
        assert_host_gets(lab, h2, f"http://{PUBLIC_NAME}:18080/")
    finally:
        ansible(lab, h1, "-m", "ansible.builtin.command", "-a", "docker rm -f labprobe")


def test_a_second_up_keeps_every_host_and_builds_nothing(lab):
    before = {host: docker.inspect("container", lab.container(host))["Id"] for host in lab.hosts}
    again = run_lab("up")
    assert again.returncode == 0, again.stderr
    assert "lab: build" not in again.stdout
    assert "lab: import" not in again.stdout
    assert "debootstrap" not in again.stdout
    after = {host: docker.inspect("container", lab.container(host))["Id"] for host in lab.hosts}
    assert after == before


def test_status_lists_every_container_of_the_lab_with_its_address(lab):
    status = run_lab("status", timeout=120)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split()[1:] for line in status.stdout.splitlines()}
    expected = {lab.container(h): ["running", a] for h, a in lab.hosts.items()}
    expected[lab.registry_container] = ["running", lab.registry_ip]
    expected[lab.acme_container] = ["running", lab.acme]
    assert rows == expected


def test_down_removes_the_lab_and_nothing_else(lab):
    base = docker.run(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "pmlab/debian-base"]).split()[0]
    # Look-alikes: a lab-prefixed name without the label, and the label on a name without the prefix.
    decoys = [
        ["--name", f"{lab.name}-decoy"],
        ["--name", f"decoy-of-{lab.name}", "--label", lab.label],
    ]
    names = [d[1] for d in decoys]
    try:
        ids = [
            docker.run(["run", "-d", "--network", "none", *d, base, "sleep", "600"], timeout=300).strip()
            for d in decoys
        ]
        down = run_lab("down")
        assert down.returncode == 0, down.stderr
        for cid in ids:
            assert docker.inspect("container", cid)["State"]["Running"]
        assert docker.inspect("network", lab.network) is None
        for host in lab.hosts:
            assert docker.inspect("container", lab.container(host)) is None
            assert docker.inspect("volume", f"{lab.container(host)}-docker") is None
        assert docker.inspect("container", lab.registry_container) is None
        assert not (CERTS_D / lab.registry).exists()
        assert not lab.state_dir.exists()
        assert PUBLIC_NAME not in Path("/etc/hosts").read_text()
        # The cache stays: the next up builds nothing.
        assert docker.inspect("image", base) is not None
    finally:
        for name in names:
            docker.run(["rm", "-f", name], check=False)
