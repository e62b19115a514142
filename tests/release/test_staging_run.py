"""The pieces of `python -m release staging-run` that run without a lab: the later releases it builds
(real images on the test registry) and the upgrade that rolls itself back, with real ansible-playbook
runs of stand-in playbooks (one fails like a stopped upgrade, one records the rollback)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from lab import pki
from lab.topology import load as load_lab
from release import deploy, gate, manifest, staging_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
ANSIBLE = str(Path(PY).parent / "ansible-playbook")

RECORD = """
- name: Stands in for {what}; records the release it was given
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Record it
      ansible.builtin.copy:
        dest: "{{{{ probe_out }}}}"
        content: "{{{{ {{'what': '{what}', 'release': photomatrix_release | default({{}})}} | to_json }}}}"
        mode: "0600"
"""

STOPPED = """
- name: Stands in for an upgrade whose ERP never gets healthy
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Stop as tasks/upgrade_host.yml does
      ansible.builtin.fail:
        msg: >-
          Upgrade stopped at {{ inventory_hostname }} (ERP API): the container restarted.
          Roll back: make rollback
"""


@pytest.fixture(autouse=True)
def gate_key(tmp_path, monkeypatch) -> Path:
    key = tmp_path / "keys" / "gate.key"
    monkeypatch.setenv("RELEASE_GATE_KEY_FILE", str(key))
    return key


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=True).stdout


def test_a_later_release_is_the_same_images_with_one_more_label_and_new_digests(released, registry, tmp_path):
    later = manifest.load(
        staging_run.rehearsal_release(
            released, "v-test.r2", tmp_path, registry.ca, broken={"beta": 'ENTRYPOINT ["/bin/false"]'}
        )
    )
    try:
        _check_later_release(later, released)
    finally:  # the machine keeps no tag of a test's registry (a new port each run)
        for image in later.images.values():
            subprocess.run(["docker", "image", "rm", "--force", f"{image.repository}:v-test.r2"],
                           capture_output=True, timeout=120, check=False)  # fmt: skip


def test_a_release_of_one_changed_image_keeps_the_others_digests(released, registry, tmp_path):
    """Releases 3 and 4 change the ERP image alone: the others keep their digests under the new tag, so
    the upgrade and its rollback roll that one container."""
    later = manifest.load(
        staging_run.rehearsal_release(
            released, "v-test.r3", tmp_path, registry.ca, broken={"beta": 'ENTRYPOINT ["/bin/false"]'},
            only={"beta"},
        )
    )  # fmt: skip
    try:
        assert set(later.images) == set(released.images)
        assert later.images["alpha"].digest == released.images["alpha"].digest
        assert later.images["alpha"].tags[0] == "v-test.r3"
        assert later.images["beta"].digest != released.images["beta"].digest
        beta = later.images["beta"].ref
        config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", beta))
        assert config["Entrypoint"] == ["/bin/false"]
    finally:
        for image in later.images.values():
            subprocess.run(["docker", "image", "rm", "--force", f"{image.repository}:v-test.r3"],
                           capture_output=True, timeout=120, check=False)  # fmt: skip


def _check_later_release(later, released) -> None:
    assert later.commit == released.commit
    assert set(later.images) == set(released.images)
    for key, image in later.images.items():
        assert image.digest != released.images[key].digest
        assert image.repository == released.images[key].repository
        config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", image.ref))
        assert config["Labels"][staging_run.REHEARSAL_LABEL] == "v-test.r2"
        # Only the image named in BROKEN gets the fault.
        assert (config.get("Entrypoint") == ["/bin/false"]) is (key == "beta")
    # Recorded as make release records: SBOMs of the new images, which the manifest's checks accept.
    assert (later.directory / later.images["alpha"].sbom).stat().st_size > 1000
    with pytest.raises(subprocess.CalledProcessError):
        _docker("run", "--rm", "--network", "none", later.images["beta"].ref, "true")


def _inventory(tmp_path: Path, registry, seen: Path) -> Path:
    inventory = tmp_path / "hosts.yml"
    host = {"container_registry": registry.address, "probe_out": str(seen), "ansible_python_interpreter": PY}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"stagehost": host}}}))
    return inventory


def _playbook(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _copy(released: manifest.Manifest, into: Path, version: str) -> manifest.Manifest:
    shutil.copytree(released.directory / "sbom", into / "sbom")
    data = json.loads(released.path.read_text())
    data["version"] = version
    return manifest.load(manifest.write(into, data))


def _never_gated():
    raise AssertionError("the gate must not run after a failed upgrade")


def test_an_upgrade_that_stops_is_rolled_back_and_says_why(released, registry, tmp_path):
    first = _copy(released, tmp_path / "r1", "v-first")
    broken = _copy(released, tmp_path / "r3", "v-broken")
    seen = tmp_path / "seen.json"
    inventory = _inventory(tmp_path, registry, seen)
    state = tmp_path / "state"
    site = _playbook(tmp_path, "site.yml", RECORD.format(what="site"))
    deploy.deploy(first, "staging", inventory, state, registry.ca, playbook=site)
    rollback = _playbook(tmp_path, "rollback.yml", RECORD.format(what="rollback"))
    outcome = deploy.gated_upgrade(
        broken, "staging", inventory, state, registry.ca, _never_gated,
        playbook=_playbook(tmp_path, "upgrade.yml", STOPPED),
        rollback_argv=[ANSIBLE, "-i", str(inventory), rollback],
    )  # fmt: skip
    assert outcome["outcome"] == "rolled back"
    assert outcome["rolled_back_to"] == "v-first"
    assert outcome["caught"]["by"] == "upgrade"
    assert "Upgrade stopped at stagehost (ERP API): the container restarted" in outcome["caught"]["said"]
    assert json.loads(seen.read_text())["what"] == "rollback"
    assert Path(outcome["rollback_log"]).is_file()
    history = [(e["version"], e["how"]) for e in deploy.History(state, "staging").entries()]
    assert history == [("v-first", "deploy"), ("v-first", "rollback")]  # the broken one never ran


def test_an_upgrade_whose_gate_fails_is_rolled_back_and_one_that_passes_stays(released, registry, tmp_path):
    first = _copy(released, tmp_path / "r1", "v-first")
    second = _copy(released, tmp_path / "r2", "v-second")
    third = _copy(released, tmp_path / "r3", "v-third")
    seen = tmp_path / "seen.json"
    inventory = _inventory(tmp_path, registry, seen)
    state = tmp_path / "state"
    site = _playbook(tmp_path, "site.yml", RECORD.format(what="site"))
    upgrade = _playbook(tmp_path, "upgrade.yml", RECORD.format(what="upgrade"))
    rollback_playbook = _playbook(tmp_path, "rollback.yml", RECORD.format(what="rollback"))
    rollback = [ANSIBLE, "-i", str(inventory), rollback_playbook]
    deploy.deploy(first, "staging", inventory, state, registry.ca, playbook=site)

    def passing():
        return gate.run(second, "staging", [gate.Step("verify", [PY, "-c", "pass"])])

    kept = deploy.gated_upgrade(second, "staging", inventory, state, registry.ca, passing, upgrade, rollback)
    assert kept == {"outcome": "passed", "version": "v-second"}
    assert json.loads(seen.read_text())["what"] == "upgrade"
    assert json.loads(seen.read_text())["release"]["version"] == "v-second"

    def failing():
        return gate.run(third, "staging", [gate.Step("verify", [PY, "-c", "raise SystemExit(3)"])])

    back = deploy.gated_upgrade(third, "staging", inventory, state, registry.ca, failing, upgrade, rollback)
    assert back["outcome"] == "rolled back"
    assert back["caught"] == {"by": "gate step verify", "log": "gate-staging/verify.log", "rc": 3}
    assert back["rolled_back_to"] == "v-second"
    assert json.loads(seen.read_text())["what"] == "rollback"
    history = [(e["version"], e["how"]) for e in deploy.History(state, "staging").entries()]
    assert history == [
        ("v-first", "deploy"), ("v-second", "upgrade"), ("v-third", "upgrade"), ("v-second", "rollback"),
    ]  # fmt: skip
    with pytest.raises(gate.GateError, match="failed the staging gate"):
        gate.check(third, "staging")


def test_an_upgrade_needs_a_release_in_place(released, registry, tmp_path):
    only = _copy(released, tmp_path / "r", "v-only")
    inventory = _inventory(tmp_path, registry, tmp_path / "seen.json")
    with pytest.raises(deploy.DeployError, match="runs no release yet"):
        deploy.gated_upgrade(only, "staging", inventory, tmp_path / "state", registry.ca, _never_gated)


def test_make_test_delivery_is_the_staging_run_against_the_release_lab():
    result = subprocess.run(
        [PY, "-m", "release", "staging-run", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "--keep" in result.stdout
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "test-delivery", "STAGING_ARGS=--keep"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "-m release staging-run -i release/lab --keep" in " ".join(dry.stdout.split())


def test_ci_s_make_test_runs_the_staging_run_beside_the_others_once_the_images_are_built():
    """`.ci/run` → `make test`: pytest alone in the foreground; in the background the images are built once,
    then `make test-delivery` runs beside `make test-infra` and `make test-multi`."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\ntest: setup") : makefile.index("\ntest-fast:")]
    background, foreground = recipe.split(") & cycles=", 1)
    assert "delivery > $(TEST_DELIVERY_LOG)" not in foreground
    built = background[: background.index("else")]
    images = built.index("playbooks/docker.yml --tags images")
    delivery = built.index("delivery > $(TEST_DELIVERY_LOG) 2>&1 & deliv=$$!")
    assert images < delivery < built.index("wait $$deliv")
    assert foreground.index("$(BIN)/pytest") < foreground.index("wait $$cycles; read")
    assert "$(MAKE) test-delivery" in recipe
    assert '"$(TEST_DELIVERY)" = false' in recipe
    assert "[ $$delivery_rc = 0 ]" in recipe  # its failure fails make test
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    expected = "would run lint, pytest, make test-delivery, make test-infra, make test-multi"
    assert expected in dry.stdout, dry.stdout[-2000:]


def test_ci_s_make_test_runs_the_multi_host_cycle_beside_test_infra_once_the_images_are_built():
    """`make test`, in the background: the images built once, then `make test-infra` beside `make
    test-multi` (one after the other when that build failed: they would build the same images at once);
    a failure of either fails make test; test-multi runs the whole cycle (the upgrade and host-loss drills
    too) and refuses a running lab of inventory/lab."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\ntest: setup") : makefile.index("\ntest-fast:")]
    build = "playbooks/docker.yml --tags images > $(TEST_IMAGES_LOG) 2>&1 && built=true"
    cycles = recipe[recipe.index("if $$built; then", recipe.index(build)) : recipe.index(") & cycles=")]
    beside, serial = cycles.split("else", 1)
    # Built: test-infra in the background, test-multi meanwhile, then both exit codes.
    infra = beside.index("infra_cycle > $(TEST_INFRA_LOG) 2>&1 & infra=$$!")
    assert infra < beside.index("multi > $(TEST_MULTI_LOG)") < beside.index("wait $$infra; infra_rc=$$?")
    # Not built: one after the other.
    assert serial.index("infra_cycle > $(TEST_INFRA_LOG) 2>&1; infra_rc=$$?") < serial.index(
        "multi > $(TEST_MULTI_LOG)"
    )
    assert "[ $$infra_rc = 0 ]" in recipe
    # make test-infra yields the CPU to the others (it has the most slack; the multi-host cycle is the
    # longest path), and says how long it took.
    cycle = recipe[recipe.index("infra_cycle() {") :]
    assert "nice -n $(TEST_INFRA_NICE) $(MAKE) test-infra;" in cycle[: cycle.index("}")]
    assert "TEST_INFRA_NICE ?= 10" in makefile
    assert "$(MAKE) test-multi" in recipe
    assert '"$(TEST_MULTI)" = false' in recipe
    assert "[ $$multi_rc = 0 ]" in recipe
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "test-multi"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    lines = " ".join(dry.stdout.split())
    assert "-m lab status -i inventory/lab" in lines
    assert "-m lab.multi -i inventory/lab" in lines
    assert "--to" not in lines  # the drill too


def test_the_gate_runs_the_release_s_own_checks_from_its_tree(released, tmp_path):
    inventory = Path("release/lab")
    with deploy.release_tree(released.commit, inventory) as tree:
        # The release's files, the work tree's inventory directory (its keys and CA stay here).
        assert (tree / "playbooks" / "verify.yml").is_file()
        assert (tree / "release" / "lab").resolve() == (ROOT / "release" / "lab").resolve()
        steps = gate.default_steps(inventory, "https://chat.example.test", tmp_path / "out", tree)
        assert [s.cwd for s in steps] == [tree, ROOT, ROOT]  # the judges (load, audit) are the work tree's
        venv = ROOT / ".venv"
        assert steps[0].argv == [
            "make",
            f"VENV={venv}",
            "-o",
            f"{venv}/.installed",
            "verify",
            "INVENTORY=release/lab",
        ]
        assert steps[2].reports == [ROOT / ".state" / "security-report" / "lab"]
        where = gate.Step("verify", [PY, "-c", "import os; print(os.getcwd())"], cwd=tree)
        record = gate.run(released, "probe", [where])
        assert record["passed"]
        assert (released.directory / "gate-probe" / "verify.log").read_text().strip() == str(tree)
    assert not tree.exists()


@pytest.fixture
def public_name(tmp_path: Path):
    """Two CAs made by lab/pki.py: `acme` (stands for the lab's ACME CA) and `internal`; a loopback TLS
    server for chat.pmrel.test whose certificate comes from the CA the test names (one connection each)."""
    cas = {}
    for name in ("acme", "internal"):
        directory = tmp_path / name
        pki.ensure_registry_pki(directory, name, "127.0.0.1")
        pki.ensure_service_cert(directory, "chat", "chat.pmrel.test", "127.0.0.1")
        cas[name] = directory

    def serve(signer: str) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cas[signer] / "chat.crt", cas[signer] / "chat.key")
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(10)

        def once() -> None:
            with listener:
                try:
                    conn, _ = listener.accept()
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.settimeout(5)
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass

        threading.Thread(target=once, daemon=True).start()
        return listener.getsockname()[1]

    return cas, serve


def test_the_public_certificate_must_verify_against_the_public_ca_and_not_be_the_internal_cas(public_name):
    cas, serve = public_name
    acme, internal = cas["acme"] / "ca.crt", cas["internal"] / "ca.crt"
    found = staging_run.served_certificate("chat.pmrel.test", "127.0.0.1", acme, internal, port=serve("acme"))
    assert found["issuer"] == "CN=acme lab CA"
    assert int(found["serial"], 16) > 0
    # Verified against the public CA alone: the internal CA's certificate does not pass for it.
    with pytest.raises(staging_run.StagingRunError, match="does not verify against"):
        staging_run.served_certificate("chat.pmrel.test", "127.0.0.1", acme, internal, port=serve("internal"))
    # Nor when the clients trusted the internal CA too (the role's temporary certificate stayed).
    with pytest.raises(staging_run.StagingRunError, match="internal CA, not the ACME one"):
        staging_run.served_certificate(
            "chat.pmrel.test", "127.0.0.1", internal, internal, port=serve("internal")
        )


def test_the_release_lab_takes_its_public_certificate_as_inventory_staging_does() -> None:
    """release/lab stands for staging: every setting of inventory/staging's public certificate and of its
    clients' trust is release/lab's too, the same, but for the ACME CA itself (the lab's, lab_acme)."""
    staging = yaml.safe_load((ROOT / "inventory" / "staging" / "group_vars" / "all" / "main.yml").read_text())
    lab = yaml.safe_load((ROOT / "release" / "lab" / "group_vars" / "all.yml").read_text())
    keys = [k for k in staging if k.startswith("tls_proxy_") or k.endswith(("_ca_src", "_ca_file"))]
    assert "tls_proxy_acme_trust_export" in keys
    assert "chatbot_ca_src" in keys
    own = {
        "tls_proxy_acme_directory",
        "tls_proxy_acme_email",
        "tls_proxy_acme_trust_roots",
        "photomatrix_ca_file",
    }
    assert {k: lab.get(k) for k in keys if k not in own} == {k: staging[k] for k in keys if k not in own}
    acme = load_lab(ROOT / "release" / "lab")
    assert lab["tls_proxy_acme_directory"] == acme.acme_directory
    assert lab["tls_proxy_acme_trust_roots"] == [acme.acme_roots]
    assert lab["photomatrix_ca_file"].endswith("/acme-roots.pem")
