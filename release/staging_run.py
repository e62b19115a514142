"""`python -m release staging-run -i release/lab`: the delivery pipeline run for real against a lab.

    lab up (its ACME CA too) → release 1 (this commit's images, pushed to the lab registry) → deploy by
      digest: the proxy host gets the public certificate from the lab's ACME CA over HTTP-01, as staging
      gets one from Let's Encrypt's staging CA (checked against the exported roots, not the internal CA's)
      → the host's renewal job renews it now → gate
    → release 2 (release 1's images with one more label: new digests) → deploy as an upgrade under the
      upgrade drill's load and judge (no request through the proxy may fail while the ERP's two
      replicas or the bot roll) → gate
    → release 3 (release 2 with one changed image, the ERP's, carrying a secret in its environment: it
      starts and is healthy, so the upgrade passes; the other images keep release 2's digests)
      → the gate fails (verify's check of the containers' environment)
      → automatic `make rollback` → release 2's images run again (checked on every host, image by image)
    → release 4 (release 2 with one changed image, an ERP image that cannot start) → deploy as an
      upgrade → the upgrade stops at the ERP → automatic `make rollback` → release 2's images again
      → `make rollback ROLLBACK_ARGS='-e rollback_every_layer=true'` (every container already on its
      recorded image: the play says so, and re-deploys every layer) → release 2's images still
      → `make rotate WHAT=ca` (a new internal CA; every container keeps its image, the ACME certificate
      stays) → the gate's verify again
    → the proxy still serves the renewed certificate → release pages → lab down (also after a failure;
      --keep keeps the lab).

Each stage's time is printed; the JSON report (stages, what the gate caught, manifest and SBOM sizes)
goes to <state>/staging-run-<stamp>.json and its path is printed last.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import ssl
import subprocess  # nosec B404
import time
from pathlib import Path

from cryptography import x509

from lab import control as lab_control
from lab import drill_host_loss, drill_upgrade, remote
from lab.topology import Lab
from lab.topology import load as load_lab
from ops.status import inventory_settings
from release import build, deploy, docker, gate, page
from release.manifest import Manifest, load

REHEARSAL_LABEL = "org.photomatrix.release-rehearsal"
# Release 3's fault, one only the gate sees: a secret baked into the ERP image's environment (as if a
# Dockerfile carried it). The ERP reads the mounted file instead, so it starts and is healthy; `make
# verify` (tests/infra/test_containers.py) refuses secrets in a project container's environment.
LEAKY = {"erp": "ENV ERP_ALERT_WEBHOOK_URL=https://chat.invalid/hooks/baked-into-the-image"}
# The test the gate must fail at for release 3 (in the verify step's log): `make verify INVENTORY=…`
# checks every host's containers (tests/infra/test_hosts.py; test_containers.py does it for a local stack).
LEAK_CAUGHT_BY = "test_no_secret_is_visible_in_docker_inspect"
# Release 4's fault: the ERP's process exits at once, so its container restarts and never gets healthy.
BROKEN = {"erp": 'ENTRYPOINT ["/bin/false"]'}
# Containers `make upgrade` / `make rollback` roll, and the manifest image each runs
# (playbooks/vars/upgrade.yml, upgrade_image_keys).
ROLLED = {
    "photomatrix-erp-api": "erp",
    "photomatrix-chatbot": "bot",
    "photomatrix-proxy": "nginx",
    "photomatrix-rocketchat-tls": "nginx",
    "photomatrix-prometheus": "prometheus",
    "photomatrix-alertmanager": "alertmanager",
    "photomatrix-node-exporter": "node_exporter",
    "photomatrix-blackbox-exporter": "blackbox_exporter",
    # The lab runs the simulator where the official Rocket.Chat image cannot run (release/deploy.py).
    "photomatrix-rocketchat": "rocketchat_sim",
    "photomatrix-nats": "nats",
}
BUILD_TIMEOUT = 600
# Layers `make rollback` must leave as they are after releases 3 and 4 (each changed the ERP's image only):
# rollback.yml re-deploys only the layers with a container not on its recorded image.
LEFT_ALONE = ("Rocket.Chat", "bot", "proxy", "node exporter", "monitoring")
ROLLED_BACK = "ERP API"
# The bot's admins room as the roles create it (chatbot_admins_channel): a private group.
ADMINS_CHANNEL = "admins"
# Where the rocketchat role leaves the stack's admin password on its host (a path, not a secret; the smoke
# profile logs in with what it holds).
ADMIN_SECRET_PATH = "/srv/photomatrix/secrets/rocketchat/admin_password"  # noqa: S105  # nosec B105


class StagingRunError(RuntimeError):
    """A stage of the staging run did not do what it must."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def rehearsal_dockerfile(base_ref: str, version: str, extra: str = "") -> str:
    """The image of a later release: BASE_REF plus one label (a new digest), and EXTRA if given."""
    lines = [f"FROM {base_ref}", f"LABEL {REHEARSAL_LABEL}={version}"]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def rehearsal_release(
    base: Manifest,
    version: str,
    state: Path,
    ca: Path | None = None,
    broken: dict[str, str] | None = None,
    only: set[str] | None = None,
) -> Path:
    """Release VERSION: every image of BASE (or those ONLY names) rebuilt with one more label (BROKEN's
    lines added to those it names), the others the same image under the new tag, all pushed as
    <registry>/photomatrix/<name>:VERSION and recorded like `make release` does.

    A release of one changed image (ONLY) rolls that image alone: upgrade.yml and rollback.yml leave a
    container whose digest did not change as it is."""
    broken = broken or {}
    refs: dict[str, str] = {}
    for key, image in sorted(base.images.items()):
        ref = f"{image.repository}:{version}"
        if only is not None and key not in only:
            docker.run(["tag", image.ref, ref], timeout=60)
        else:
            dockerfile = rehearsal_dockerfile(image.ref, version, broken.get(key, ""))
            try:
                result = subprocess.run(  # noqa: S603  # nosec B603
                    ["/usr/bin/docker", "build", "--network", "none", "--tag", ref, "-"],
                    input=dockerfile,
                    capture_output=True,
                    text=True,
                    timeout=BUILD_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise StagingRunError(f"building {ref} took more than {BUILD_TIMEOUT} s") from exc
            if result.returncode != 0:
                raise StagingRunError(f"building {ref} failed: {result.stderr.strip()[-600:]}")
        docker.run(["push", "--quiet", ref], timeout=1800)
        refs[key] = ref
    return build.record(state / version, base.registry, refs, version, base.commit, ca=ca)


def running_images(lab: Lab) -> dict[str, dict[str, str]]:
    """host -> {container: image id} of the stack's containers, read on each lab host."""
    found: dict[str, dict[str, str]] = {}
    for host in lab.hosts:
        out = remote.capture(
            lab,
            host,
            "ids=$(sudo docker ps --all --quiet --filter name=^photomatrix-); "
            'if [ -n "$ids" ]; then sudo docker inspect --format "{{.Name}} {{.Image}}" $ids; fi',
        )
        found[host] = dict(line.lstrip("/").split(" ", 1) for line in out.splitlines() if " " in line)
    return found


def image_ids(lab: Lab, host: str, manifest: Manifest) -> dict[str, str]:
    """manifest key -> the id of that digest's image on HOST ('' when the host does not have it)."""
    ids: dict[str, str] = {}
    for key, image in manifest.images.items():
        try:
            ids[key] = remote.capture(
                lab, host, f"sudo docker image inspect --format '{{{{.Id}}}}' {image.ref}"
            ).strip()
        except remote.RemoteError:
            ids[key] = ""
    return ids


def runs_release(lab: Lab, manifest: Manifest) -> list[str]:
    """What on the lab's hosts does not run MANIFEST's images (every rolled container checked); []: all do."""
    problems: list[str] = []
    for host, containers in running_images(lab).items():
        wanted = image_ids(lab, host, manifest)
        for container, key in ROLLED.items():
            if container not in containers:
                continue
            if not wanted.get(key) or containers[container] != wanted[key]:
                problems.append(
                    f"{host}: {container} runs {containers[container][:19]}, "
                    f"not {manifest.version}'s {key} ({wanted.get(key, '')[:19] or 'absent'})"
                )
    return problems


def upgrade_under_load(
    lab: Lab,
    domain: str,
    manifest: Manifest,
    env: str,
    inventory: Path,
    state: Path,
    ca: Path | None,
    public_ca: Path,
) -> dict:
    """Upgrade ENV to MANIFEST (upgrade.yml by digest) while the upgrade drill's request loop GETs an ERP
    path through DOMAIN (RATE a second, each on a new connection, verified against the public CA), each
    request counted in the play under way when it started. Judged as `make drill` and the lab's drill
    judge an upgrade: no request may fail while the ERP (two replicas on the staging host, rolled one at
    a time behind the proxy) or the bot rolls, or around them; while the proxy swaps its nginx every
    request must get an HTTP answer. Returns each phase's requests, failures and time."""
    context = ssl.create_default_context(cafile=str(public_ca))
    phases = drill_upgrade.Phases()
    loop = drill_host_loss.RequestLoop(domain, context, rate=drill_upgrade.RATE)
    phases.enter("before")
    loop.start()
    try:
        time.sleep(5)  # a baseline: the stack answers before anything changes
        phases.enter("upgrade prepare")
        deploy.deploy(
            manifest, env, inventory, state, ca, playbook=deploy.UPGRADE, how="upgrade",
            on_line=drill_upgrade.PlayMarker("upgrade", phases),
        )  # fmt: skip
        phases.enter("after upgrade")
        time.sleep(5)
    finally:
        samples = loop.stop()
        rows = phases.table(samples, time.time())
        failed = sum(len(row["failed"]) for row in rows.values())
        print(f"staging-run: upgrade under load: {len(samples)} requests through {domain}, {failed} failed:")
        print("\n".join(drill_upgrade.report(rows)), flush=True)
    problems = drill_upgrade.judge(rows)
    if problems:
        raise StagingRunError("the upgrade under load: " + "; ".join(problems))
    return {
        name: {"seconds": round(row["seconds"], 1), "sent": row["sent"], "failed": len(row["failed"])}
        for name, row in rows.items()
    }


def load_credentials(lab: Lab, host: str) -> Path:
    """A 0600 LOAD_CREDENTIALS_FILE for the smoke load profile: the stack's admin, read on HOST.

    Every simulated person reaches the lab from this machine's one address, so Rocket.Chat's limiter
    (10 calls a minute per address and route) would answer 429 (seen: 31 % errors): the test accounts
    get the `app` role too, which holds api-bypass-rate-limit (docs/load-testing.md, remote targets)."""
    password = remote.capture(lab, host, f"sudo cat {ADMIN_SECRET_PATH}").strip()
    path = lab.state_dir / "load-credentials.env"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            f"LOAD_RC_ADMIN_USER=admin\nLOAD_RC_ADMIN_PASSWORD={password}\nLOAD_BOT_USERNAME=erp-bot\n"
            f"LOAD_ADMINS_CHANNEL={ADMINS_CHANNEL}\nLOAD_ADMINS_ROOM_TYPE=group\nLOAD_USER_ROLES=user,app\n"
        )
    return path


# The proxy host's renewal script (tls_proxy_acme_renew_script's default) and a renewal window wider than
# any certificate's lifetime: `PHOTOMATRIX_ACME_RENEW_DAYS=N photomatrix-acme-renew` renews now
# (docs/install.md, certificate modes).
ACME_RENEW = "sudo env PHOTOMATRIX_ACME_RENEW_DAYS=3650 /usr/local/sbin/photomatrix-acme-renew"
RELOAD_WAIT = 30.0


def public_ca_file(inventory: Path) -> Path:
    """The CA file the clients of the public name verify with: the inventory's photomatrix_ca_file as
    Ansible templates it (release/lab: the root of the lab's ACME CA, exported by the proxy role)."""
    value = inventory_settings(inventory).get("photomatrix_ca_file")
    if not value:
        raise StagingRunError(f"{inventory}: no photomatrix_ca_file (Ansible could not template it)")
    return Path(str(value)).resolve()


def served_certificate(
    domain: str, address: str, ca: Path, internal_ca: Path | None = None, port: int = 443
) -> dict:
    """The certificate the proxy at ADDRESS:PORT serves for DOMAIN, verified against CA alone: its serial,
    issuer and expiry. With INTERNAL_CA, a certificate that CA signed is refused (in ACME mode the role
    starts with one until the first ACME certificate exists: it must not stay, nor come back)."""
    context = ssl.create_default_context(cafile=str(ca))
    where = f"{domain} at {address}:{port}"
    try:
        with (
            socket.create_connection((address, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=domain) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise StagingRunError(f"{where} does not verify against {ca.name}: {exc}") from exc
    if not der:
        raise StagingRunError(f"{where} presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    if internal_ca is not None and internal_ca.is_file():
        internal = x509.load_pem_x509_certificate(internal_ca.read_bytes())
        if cert.issuer == internal.subject:
            raise StagingRunError(f"{domain} serves a certificate of the internal CA, not the ACME one")
    return {
        "serial": format(cert.serial_number, "x"),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def acme_renewal(lab: Lab, host: str, domain: str, address: str, ca: Path, before: dict) -> dict:
    """The proxy host's renewal job renews now (a window wider than the certificate's lifetime), on the
    host, with lego against the ACME CA; the proxy then serves the new certificate."""
    out = remote.capture(lab, host, ACME_RENEW, timeout=300).strip().splitlines()
    if not out or out[-1] != "renewed":
        raise StagingRunError(f"{host}: photomatrix-acme-renew printed {out[-1:] or 'nothing'}, not renewed")
    # nginx reloads gracefully: the workers that read the new certificate take over within moments.
    deadline = time.monotonic() + RELOAD_WAIT
    while (after := served_certificate(domain, address, ca))["serial"] == before["serial"]:
        if time.monotonic() > deadline:
            raise StagingRunError(
                f"{domain}: {RELOAD_WAIT:.0f} s after the renewal the proxy still serves the old certificate"
            )
        time.sleep(1)
    return after


def rotate_ca(
    lab: Lab, inventory: Path, state: Path, domain: str, address: str, public_ca: Path, before: dict
) -> dict:
    """`make rotate WHAT=ca INVENTORY=…` on the environment the pipeline deployed (images by digest), in
    ACME mode: the internal CA is new, every container keeps its image, and the public certificate (and the
    ACME account) stay (docs/operations.md, rotating credentials)."""
    store = lab.state_dir / "secrets" / "ca.crt"
    old_ca = store.read_bytes()
    images = running_images(lab)
    log = state / f"rotate-ca-{_now()}.log"
    argv = ["make", "--no-print-directory", "rotate", "WHAT=ca", f"INVENTORY={inventory}"]
    with log.open("w") as handle:
        done = subprocess.run(  # noqa: S603  # nosec B603
            argv, cwd=deploy.ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=1800, check=False
        )
    if done.returncode != 0:
        raise StagingRunError(f"make rotate WHAT=ca failed (exit {done.returncode}); log {log}")
    if store.read_bytes() == old_ca:
        raise StagingRunError(f"make rotate WHAT=ca left the internal CA as it was ({store})")
    now = running_images(lab)
    changed = {
        f"{host}/{name}": f"{was[:19]} -> {now.get(host, {}).get(name, 'gone')[:19]}"
        for host, containers in images.items()
        for name, was in containers.items()
        if now.get(host, {}).get(name) != was
    }
    if changed:
        raise StagingRunError(f"make rotate WHAT=ca changed images: {changed}")
    after = served_certificate(domain, address, public_ca, store)
    if after["serial"] != before["serial"]:
        raise StagingRunError(f"{domain}: make rotate WHAT=ca replaced the ACME certificate ({after})")
    return {"log": str(log), "public": after}


class Run:
    """The stages, their times and findings; the JSON report."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.report: dict = {"started": _now(), "stages": [], "releases": {}, "passed": False}
        self.path = state / f"staging-run-{self.report['started']}.json"

    def stage(self, name: str, fn, *args, **kwargs):
        started = time.monotonic()
        entry: dict = {"stage": name}
        print(f"staging-run: {name} ...", flush=True)
        try:
            result = fn(*args, **kwargs)
            entry["ok"] = True
            return result
        except BaseException as exc:
            entry["ok"] = False
            entry["error"] = str(exc)[-1500:]
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - started, 1)
            entry["load"] = round(os.getloadavg()[0], 1)
            self.report["stages"].append(entry)
            self.save()
            print(f"stage {name}: {entry['seconds']} s ({'ok' if entry['ok'] else 'FAILED'})", flush=True)

    def note(self, key: str, value) -> None:
        self.report[key] = value
        self.save()

    def release_figures(self, label: str, manifest: Manifest) -> None:
        sboms = {k: (manifest.directory / i.sbom).stat().st_size for k, i in manifest.images.items()}
        self.report["releases"][label] = {
            "version": manifest.version,
            "manifest": str(manifest.path),
            "manifest_bytes": manifest.path.stat().st_size,
            "sbom_bytes": sboms,
            "digests": {k: i.digest for k, i in manifest.images.items()},
        }
        self.save()

    def save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.report, indent=2) + "\n")


def _gate(
    manifest: Manifest, inventory: Path, target: str, steps: list[str] | None = None, env: str = "staging"
) -> dict:
    """The staging gate (its record is what `make promote` checks); a partial gate records as another
    ENV, so it never stands for the staging gate."""
    out = manifest.directory / f"gate-{env}"
    with deploy.release_tree(manifest.commit, inventory) as tree:
        every = gate.default_steps(inventory, target, out, tree)
        return gate.run(manifest, env, [s for s in every if steps is None or s.name in steps])


def layers_left_alone(log: Path) -> set[str]:
    """The layers rollback.yml said were already on their recorded images (its log, YAML-folded or not)."""
    text = re.sub(r"\s+", " ", log.read_text(errors="replace") if log.is_file() else "")
    return set(re.findall(r"\(([^()]+)\): already on the recorded images: not rolled back", text))


def rolled_back_only_the_erp(caught: dict) -> dict:
    """Check that the rollback re-deployed the ERP alone (LEFT_ALONE said so, the ERP not); its findings."""
    left = layers_left_alone(Path(caught["rollback_log"]))
    missing = sorted(set(LEFT_ALONE) - left)
    if missing or ROLLED_BACK in left:
        raise StagingRunError(
            f"make rollback of {caught['version']} should re-deploy the {ROLLED_BACK} alone; it left alone "
            f"{sorted(left) or 'nothing'} (expected {', '.join(LEFT_ALONE)}): log {caught['rollback_log']}"
        )
    return {"left_alone": sorted(left), "rollback_seconds": caught["rollback_seconds"]}


# `make rollback` with every layer re-deployed (docs/operations.md): the operator's way to run the recorded
# images again on a host whose containers already run them (after a hand-made change, say).
EVERY_LAYER_ARGS = "-e rollback_every_layer=true"


def roles_run(log: Path) -> tuple[set[str], set[str]]:
    """(roles the rollback ran, roles it skipped) from its log: each `TASK [Run the role <role>]` followed
    by `included: <role> for <host>` or by `skipping:`."""
    ran: set[str] = set()
    skipped: set[str] = set()
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    for number, line in enumerate(lines):
        header = re.match(r"TASK \[Run the role (\w+)\]", line)
        if not header:
            continue
        role = header.group(1)
        after = next((x for x in lines[number + 1 : number + 4] if x.strip()), "")
        (ran if after.startswith(f"included: {role} for ") else skipped).add(role)
    return ran, skipped


def every_layer_findings(log: Path) -> dict:
    """Check that `make rollback ROLLBACK_ARGS='-e rollback_every_layer=true'`, on an environment already on
    its recorded images, said so and re-deployed every layer anyway; its findings."""
    text = re.sub(r"\s+", " ", log.read_text(errors="replace") if log.is_file() else "")
    ran, skipped = roles_run(log)
    problems = []
    if "every container runs its recorded image" not in text:
        problems.append("it did not find every container on its recorded image first")
    if "(every layer re-deployed: rollback_every_layer)" not in text:
        problems.append("it did not say that every layer is re-deployed")
    left = layers_left_alone(log)
    if left:
        problems.append(f"it left {sorted(left)} alone")
    if skipped or not {"rocketchat", "erp_api", "chatbot", "tls_proxy", "monitoring"} <= ran:
        problems.append(f"it ran the roles {sorted(ran)} and skipped {sorted(skipped)}")
    if problems:
        raise StagingRunError(
            f"make rollback ROLLBACK_ARGS='{EVERY_LAYER_ARGS}': {'; '.join(problems)}: log {log}"
        )
    return {"roles_run": sorted(ran)}


def rollback_every_layer(inventory: Path, state: Path) -> dict:
    """`make rollback INVENTORY=<inventory> ROLLBACK_ARGS='-e rollback_every_layer=true'`, as an operator
    types it, on the environment the rollbacks left on release 2; its findings (every_layer_findings) and
    time."""
    log = state / f"rollback-every-layer-{_now()}.log"
    argv = [
        "make",
        "--no-print-directory",
        "rollback",
        f"INVENTORY={inventory}",
        f"ROLLBACK_ARGS={EVERY_LAYER_ARGS}",
    ]
    print(f"staging-run: {' '.join(argv)}; log {log}", flush=True)
    started = time.monotonic()
    returncode = deploy.run_logged(argv, {}, log, deploy.ROLLBACK_TIMEOUT)
    if returncode != 0:
        raise StagingRunError(
            f"make rollback ROLLBACK_ARGS='{EVERY_LAYER_ARGS}' failed ({returncode}): log {log}"
        )
    return {**every_layer_findings(log), "seconds": round(time.monotonic() - started, 1), "log": str(log)}


def gate_caught(caught: dict, previous: Manifest, directory: Path) -> None:
    """Release 3 must have passed its upgrade, failed the gate at verify on the environment check, and been
    rolled back to PREVIOUS. DIRECTORY: release 3's (the gate's log paths are relative to it)."""
    if caught.get("outcome") != "rolled back":
        raise StagingRunError(f"release 3 (a secret in the ERP image) passed the gate: {caught}")
    by = caught.get("caught", {}).get("by", "")
    if by != "gate step verify":
        raise StagingRunError(f"release 3 was refused by {by!r}, not by the gate's verify: {caught}")
    log = directory / (caught["caught"].get("log") or "-")
    text = log.read_text(errors="replace") if log.is_file() else ""
    if LEAK_CAUGHT_BY not in text:
        raise StagingRunError(f"the gate's verify failed, but not at {LEAK_CAUGHT_BY} (log {log})")
    if caught.get("rolled_back_to") != previous.version:
        to = caught.get("rolled_back_to")
        raise StagingRunError(f"release 3 was rolled back to {to}, not {previous.version}")


def _require(record: dict, what: str) -> dict:
    if not record["passed"]:
        failed = record["steps"][-1]
        raise StagingRunError(f"{what}: the gate failed at {failed['name']} (log {failed['log']})")
    return record


def run(
    inventory: Path,
    state: Path,
    ca: Path | None = None,
    keep: bool = False,
    version: str = "",
    rev: str = "HEAD",
) -> tuple[int, Path]:
    """The whole staging run; returns (exit code, report path)."""
    lab = load_lab(inventory)
    if len(lab.public_names) != 1:
        raise StagingRunError(f"{inventory}: the staging run needs one public name (lab_public_names)")
    domain, public_address = next(iter(lab.public_names.items()))
    # The host behind the public name (lab_public_names maps it to that host's address).
    public_host = next((h for h, a in lab.hosts.items() if public_address in (h, a)), "")
    if not public_host:
        raise StagingRunError(f"{inventory}: {domain} points at {public_address}, which is none of its hosts")
    target = f"https://{domain}"
    env = "staging"
    history = deploy.History(state, env)
    r = Run(state)
    r.note("inventory", str(inventory))
    rc = 1
    try:
        r.stage("lab up", lab_control.up, lab)
        registry = deploy.inventory_registry(inventory)
        m1 = load(
            r.stage("release 1", build.release, registry, state, rev=rev, version_override=version, ca=ca)
        )
        r.release_figures("1", m1)
        r.stage("deploy 1 (site.yml by digest)", deploy.deploy, m1, env, inventory, state, ca)
        # The public name's certificate, as its clients verify it: from the lab's ACME CA in release/lab
        # (issued on the proxy host by lego), never the internal CA's; renewed on the host by its job.
        public_ca = public_ca_file(inventory)
        internal_ca = lab.state_dir / "secrets" / "ca.crt"
        certificate = r.stage(
            "public certificate", served_certificate, domain, public_address, public_ca, internal_ca
        )
        if lab.acme:
            certificate = r.stage(
                "ACME renewal on the proxy host", acme_renewal, lab, public_host, domain, public_address,
                public_ca, certificate,
            )  # fmt: skip
        r.note("public_certificate", certificate)
        # The smoke profile reaches the lab's public name with its CA and the stack's admin.
        os.environ["LOAD_ALLOWED_HOSTS"] = domain
        os.environ["LOAD_CA_FILE"] = str(public_ca)
        os.environ["LOAD_CREDENTIALS_FILE"] = str(load_credentials(lab, public_host))
        _require(r.stage("gate 1", _gate, m1, inventory, target), "release 1")

        m2 = load(r.stage("release 2 (one more label)", rehearsal_release, m1, f"{m1.version}.r2", state, ca))
        r.release_figures("2", m2)
        under_load = r.stage(
            "upgrade to 2 (upgrade.yml by digest, under load)", upgrade_under_load, lab, domain, m2, env,
            inventory, state, ca, public_ca,
        )  # fmt: skip
        r.note("upgrade_under_load", under_load)
        problems = runs_release(lab, m2)
        if problems:
            raise StagingRunError("after the upgrade to release 2: " + "; ".join(problems))
        _require(r.stage("gate 2", _gate, m2, inventory, target), "release 2")

        m3 = load(
            r.stage("release 3 (secret in the ERP image)", rehearsal_release, m2, f"{m1.version}.r3", state,
                    ca, LEAKY, set(LEAKY))
        )  # fmt: skip
        r.release_figures("3", m3)
        caught = r.stage(
            "upgrade to 3, gate fails, make rollback", deploy.gated_upgrade, m3, env, inventory, state, ca,
            lambda: _gate(m3, inventory, target),
        )  # fmt: skip
        r.note("forced_gate_failure", caught)
        gate_caught(caught, m2, m3.directory)
        r.note("rollback_3_layers", rolled_back_only_the_erp(caught))
        problems = r.stage("check release 2 runs again (after 3)", runs_release, lab, m2)
        if problems:
            raise StagingRunError("after the rollback from release 3: " + "; ".join(problems))

        m4 = load(
            r.stage("release 4 (ERP cannot start)", rehearsal_release, m2, f"{m1.version}.r4", state, ca,
                    BROKEN, set(BROKEN))
        )  # fmt: skip
        r.release_figures("4", m4)
        caught = r.stage(
            "upgrade to 4, refused, make rollback", deploy.gated_upgrade, m4, env, inventory, state, ca,
            lambda: _gate(m4, inventory, target),
        )  # fmt: skip
        r.note("forced_failure", caught)
        if caught["outcome"] != "rolled back" or caught["caught"]["by"] != "upgrade":
            raise StagingRunError(f"release 4 was not stopped by the upgrade and rolled back: {caught}")
        r.note("rollback_4_layers", rolled_back_only_the_erp(caught))
        problems = r.stage("check release 2 runs again", runs_release, lab, m2)
        if problems:
            raise StagingRunError("after the rollback: " + "; ".join(problems))
        if history.current()["sha256"] != m2.sha256:
            raise StagingRunError("the environment's record does not name release 2 after the rollback")
        # Every container on its recorded image now: the documented re-deploy of every layer anyway.
        every_layer = r.stage(
            "make rollback, every layer (rollback_every_layer)", rollback_every_layer, inventory, state
        )
        r.note("rollback_every_layer", every_layer)
        problems = r.stage("check release 2 runs (after every layer)", runs_release, lab, m2)
        if problems:
            raise StagingRunError("after the rollback of every layer: " + "; ".join(problems))
        # Day 2 on the environment as the pipeline left it (release 2 by digest, ACME): a new internal CA.
        # Last: in `make test` the multi-host cycle beside it is then past its cold deploy and its own CA
        # rotation (a rotation before gate 1 overlapped them: 450 s instead of 82 s, CI 60.6 min).
        rotated = r.stage(
            "make rotate WHAT=ca (ACME mode, images by digest)", rotate_ca, lab, inventory, state, domain,
            public_address, public_ca, certificate,
        )  # fmt: skip
        r.note("rotate_ca", rotated)
        after = r.stage(
            "verify after the rollbacks and the CA rotation", _gate, m2, inventory, target, ["verify"],
            "staging-rollback",
        )  # fmt: skip
        _require(after, "rollback")
        # Two upgrades, two rollbacks, a CA rotation and four gates later: still the renewed certificate.
        kept = served_certificate(domain, public_address, public_ca, internal_ca)
        if kept["serial"] != certificate["serial"]:
            raise StagingRunError(f"{domain}: the public certificate changed during the run: {kept}")
        pages = [str(page.render(m)) for m in (m1, m2, m3, m4)]
        r.note("pages", pages)
        r.report["passed"] = True
        rc = 0
    except Exception as exc:  # every failure is reported; the lab still goes down
        r.note("error", f"{type(exc).__name__}: {exc}"[-2000:])
        print(f"staging-run: FAILED: {exc}", flush=True)
    finally:
        if keep:
            print(f"staging-run: --keep: lab {lab.name} left up", flush=True)
        else:
            try:
                r.stage("lab down", lab_control.down, lab)
            except Exception as exc:  # the report is written anyway
                print(f"staging-run: lab down failed: {exc}", flush=True)
                rc = rc or 1
        r.note("finished", _now())
        print("stage times (s): " + ", ".join(f"{s['stage']} {s['seconds']}" for s in r.report["stages"]))
        print(f"staging-run report: {r.path}")
    return rc, r.path
