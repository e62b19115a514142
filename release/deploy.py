"""Deployment by digest (`make deploy`), the record of what each environment runs, and rollback.

A manifest is deployed with the playbook `make up` runs (playbooks/site.yml) against the environment's
inventory; the project's images are the manifest's `repository@sha256:…` references (extra vars
photomatrix_images), roles/container_images builds nothing (container_images_build false) and refuses
any reference that is not a digest (container_images_require_digests). Before anything runs, every
digest must be in the inventory's registry: a manifest whose images are not there is refused.

An environment that runs a release is upgraded with playbooks/upgrade.yml (`make upgrade`: preflight,
a verified backup, the previous image references in <root>/releases/previous.json, then one host at a
time), the same digests and switches. Rollback: after an upgrade, `make rollback` (back to the image ids
that previous.json recorded, the ERP database restored when it migrated); after a plain deployment,
the environment's previous manifest deployed by digest through this same path.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess  # nosec B404
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from lab.topology import ansible_inventory
from release.build import export_commit
from release.manifest import Manifest, load
from release.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_TIMEOUT = 5400
SITE = "playbooks/site.yml"
UPGRADE = "playbooks/upgrade.yml"
ROLLBACK_TIMEOUT = 3600
# A release is only pulled, never rebuilt: the role must know container_images_build (false here).
ROLE_DEFAULTS = Path("roles/container_images/defaults/main.yml")


class DeployError(RuntimeError):
    """The manifest was refused or the deployment failed."""


class PlaybookFailed(DeployError):
    """The deployment playbook ran and failed (hosts may have changed); its log is LOG."""

    def __init__(self, message: str, log: Path) -> None:
        super().__init__(message)
        self.log = log


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def inventory_registry(inventory: Path) -> str:
    """The container_registry every host of INVENTORY pulls from (it must be one)."""
    hostvars = ansible_inventory(inventory, error=DeployError).get("_meta", {}).get("hostvars", {})
    registries = {str(v.get("container_registry", "")) for v in hostvars.values()}
    if len(registries) != 1 or not next(iter(registries)):
        raise DeployError(
            f"{inventory}: its hosts must all set one container_registry to deploy a release "
            f"(found {sorted(registries)})"
        )
    return registries.pop()


def preflight(manifest: Manifest, registry: str, ca: Path | None = None) -> None:
    """Refuse a manifest for another registry or with a digest the registry does not hold."""
    if manifest.registry != registry:
        raise DeployError(
            f"manifest {manifest.version} is in registry {manifest.registry}, "
            f"the inventory pulls from {registry}"
        )
    with Registry(registry, ca) as reg:
        missing = [f"{i.key} ({i.ref})" for i in manifest.images.values() if not reg.has(i.path, i.digest)]
    if missing:
        raise DeployError(f"refused: not in registry {registry}: " + ", ".join(missing))


def extra_vars(manifest: Manifest) -> dict:
    """What the deployment playbook gets: the project's images by digest, nothing built."""
    images: dict[str, str] = manifest.refs()
    sim = images.get("rocketchat_sim", "")
    # Rocket.Chat and MongoDB stay the pinned official images (the simulator only where allowed).
    images["rocketchat"] = (
        f"{{{{ '{sim}' if photomatrix_images_offline | bool else photomatrix_official_images.rocketchat }}}}"
    )
    images["mongodb"] = "{{ photomatrix_official_images.mongodb }}"
    return {
        "container_images_build": False,
        "container_images_require_digests": True,
        "photomatrix_images": images,
        # Which release this is, for the roles that label what they run and for the logs.
        "photomatrix_release": {
            "version": manifest.version,
            "commit": manifest.commit,
            "manifest": manifest.sha256,
        },
    }


class History:
    """.state/release/environments/<env>.json: the manifests deployed there, oldest first."""

    def __init__(self, state_root: Path, env: str) -> None:
        self.path = state_root / "environments" / f"{env}.json"

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return list(json.loads(self.path.read_text()).get("deployments", []))

    def current(self) -> dict | None:
        entries = self.entries()
        return entries[-1] if entries else None

    def previous(self) -> dict | None:
        """The last deployment of a different manifest than the current one."""
        entries = self.entries()
        if not entries:
            return None
        return next((e for e in reversed(entries[:-1]) if e["sha256"] != entries[-1]["sha256"]), None)

    def append(self, manifest: Manifest, how: str) -> None:
        entries = self.entries()
        entries.append(
            {
                "manifest": str(manifest.path),
                "sha256": manifest.sha256,
                "version": manifest.version,
                "how": how,
                "at": _now(),
            }
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"deployments": entries[-50:]}, indent=2) + "\n")


def deploy(
    manifest: Manifest,
    env: str,
    inventory: Path,
    state_root: Path,
    ca: Path | None = None,
    playbook: str = SITE,
    how: str = "deploy",
    on_line: Callable[[str], None] | None = None,
) -> Path:
    """Preflight, then the playbook; returns its log. Records the deployment when it succeeded. ON_LINE
    sees each line of the playbook's output as it comes (the staging run marks the plays with it).

    The deployment code is the release's too: playbooks/site.yml and the roles run from a `git archive`
    of the manifest's commit (ANSIBLE_CONFIG there), the inventory and its files from the work tree.
    """
    preflight(manifest, inventory_registry(inventory), ca)
    if playbook not in (SITE, UPGRADE):
        return _run(manifest, env, inventory, state_root, Path(playbook), {}, how, on_line)
    with release_tree(manifest.commit, inventory) as source:
        if "container_images_build:" not in (source / ROLE_DEFAULTS).read_text():
            raise DeployError(
                f"commit {manifest.commit[:12]}: its roles/container_images cannot skip the build "
                "(no container_images_build), so it cannot deploy a release by digest: refused"
            )
        config = {"ANSIBLE_CONFIG": str(source / "ansible.cfg")}
        return _run(manifest, env, inventory, state_root, source / playbook, config, how, on_line)


@contextlib.contextmanager
def release_tree(commit: str, inventory: Path):
    """A scratch `git archive` of COMMIT with INVENTORY's directory linked in from the work tree: where
    a release's playbooks and checks run, so they are the release's own."""
    with tempfile.TemporaryDirectory(prefix="photomatrix-release-tree-") as scratch:
        source = Path(scratch)
        export_commit(ROOT, commit, source)
        _link_inventory(inventory, source)
        yield source


def _link_inventory(inventory: Path, source: Path) -> None:
    """Relative paths in the inventory (keys, the controller-side store) resolve in the work tree's copy:
    roles resolve `src:` against the playbook's tree, so that tree's inventory is the work tree's."""
    try:
        relative = inventory.resolve().relative_to(ROOT)
    except ValueError:
        return  # an inventory outside the repository uses absolute paths
    target = source / relative
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(ROOT / relative, target_is_directory=True)


def run_logged(
    argv: list[str], extra_env: dict, log: Path, timeout: float, on_line: Callable[[str], None] | None = None
) -> int | None:
    """Run ARGV from the repository, its output (stderr too) written to LOG line by line and shown to
    ON_LINE; its exit code, or None when it was killed after TIMEOUT seconds."""
    killed = threading.Event()
    with (
        log.open("w") as handle,
        subprocess.Popen(  # noqa: S603  # nosec B603
            argv,
            cwd=ROOT,
            env=dict(os.environ, ANSIBLE_NOCOLOR="1", **extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process,
    ):
        timer = threading.Timer(timeout, lambda: (killed.set(), process.kill()))
        timer.start()
        try:
            assert process.stdout is not None  # nosec B101
            for line in process.stdout:
                handle.write(line)
                handle.flush()
                if on_line is not None:
                    on_line(line)
        except BaseException:
            process.kill()  # a reader that failed leaves no playbook running on
            raise
        finally:
            timer.cancel()
        returncode = process.wait(timeout=60)
    return None if killed.is_set() else returncode


def _run(
    manifest: Manifest,
    env: str,
    inventory: Path,
    state_root: Path,
    playbook: Path,
    extra_env: dict,
    how: str,
    on_line: Callable[[str], None] | None = None,
) -> Path:
    logs = manifest.directory / "deployments"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = _now()
    vars_file = logs / f"{env}-{stamp}.vars.json"
    vars_file.write_text(json.dumps(extra_vars(manifest), indent=2) + "\n")
    log = logs / f"{env}-{stamp}.log"
    program = Path(sys.executable).parent / "ansible-playbook"
    print(f"deploy {manifest.version} to {env} ({inventory}) by digest; log {log}", flush=True)
    argv = [str(program), "-i", str(inventory), str(playbook), "-e", f"@{vars_file}"]
    returncode = run_logged(argv, extra_env, log, DEPLOY_TIMEOUT, on_line)
    if returncode is None:
        raise PlaybookFailed(f"deployment to {env} did not finish within {DEPLOY_TIMEOUT} s; log {log}", log)
    if returncode != 0:
        raise PlaybookFailed(
            f"deployment of {manifest.version} to {env} failed (exit {returncode}); log {log}", log
        )
    History(state_root, env).append(manifest, how)
    return log


def _recorded(entry: dict) -> Manifest:
    manifest = load(Path(entry["manifest"]))
    if manifest.sha256 != entry["sha256"]:
        raise DeployError(f"{entry['manifest']} changed since it was deployed; refusing to roll back to it")
    return manifest


def rollback(
    env: str, inventory: Path, state_root: Path, ca: Path | None = None, playbook: str = SITE
) -> Manifest:
    """Back to ENV's previous release; returns its manifest. After an upgrade `make rollback`, else
    the previous manifest deployed by digest."""
    history = History(state_root, env)
    previous = history.previous()
    if previous is None:
        raise DeployError(f"{env}: no previous release to roll back to")
    manifest = _recorded(previous)
    current = history.current() or {}
    if current.get("how") == "upgrade" and playbook == SITE:
        make_rollback(manifest, env, inventory, state_root)
    else:
        deploy(manifest, env, inventory, state_root, ca, playbook=playbook, how="rollback")
    return manifest


ROLLBACK = "playbooks/rollback.yml"


def make_rollback(
    previous: Manifest, env: str, inventory: Path, state_root: Path, argv: list[str] | None = None
) -> Path:
    """What `make rollback INVENTORY=…` runs (playbooks/rollback.yml), from the release's own tree as a
    deployment is: every host back to the images its last upgrade recorded; then ENV's record names
    PREVIOUS again. ARGV replaces the command (tests). Returns the log."""
    logs = previous.directory / "deployments"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{env}-{_now()}-rollback.log"
    print(
        f"rollback {env} ({inventory}) to {previous.version}: playbooks/rollback.yml; log {log}", flush=True
    )
    with release_tree(previous.commit, inventory) as source:
        extra_env: dict[str, str] = {}
        if argv is None:
            program = Path(sys.executable).parent / "ansible-playbook"
            argv = [str(program), "-i", str(inventory), str(source / ROLLBACK)]
            extra_env["ANSIBLE_CONFIG"] = str(source / "ansible.cfg")
        returncode = run_logged(argv, extra_env, log, ROLLBACK_TIMEOUT)
    if returncode is None:
        raise DeployError(f"rollback of {env} did not finish within {ROLLBACK_TIMEOUT} s; log {log}")
    if returncode != 0:
        raise DeployError(f"rollback of {env} failed (exit {returncode}); log {log}")
    History(state_root, env).append(previous, "rollback")
    return log


def stop_reason(log: Path) -> str:
    """What a failed playbook run said last: its 'stopped at' message, else its last fatal line."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    for marker in ("stopped at", "fatal:", "FAILED!"):
        at = text.rfind(marker)
        if at >= 0:
            line_start = text.rfind("\n", 0, at) + 1
            return " ".join(text[line_start : line_start + 700].split())
    return "(no failure message in the log)"


def gated_upgrade(
    manifest: Manifest,
    env: str,
    inventory: Path,
    state_root: Path,
    ca: Path | None,
    gate_run,
    playbook: str = UPGRADE,
    rollback_argv: list[str] | None = None,
) -> dict:
    """Upgrade ENV to MANIFEST (upgrade.yml by digest), then GATE_RUN() (a gate record); when either
    fails, `make rollback` to the release that ran before. Returns what happened."""
    before = History(state_root, env).current()
    if before is None:
        raise DeployError(f"{env} runs no release yet: deploy one first (an upgrade needs a previous one)")
    previous = _recorded(before)
    try:
        deploy(manifest, env, inventory, state_root, ca, playbook=playbook, how="upgrade")
    except PlaybookFailed as exc:
        caught = {"by": "upgrade", "error": str(exc), "said": stop_reason(exc.log)}
    else:
        record = gate_run()
        if record["passed"]:
            return {"outcome": "passed", "version": manifest.version}
        failed = record["steps"][-1]
        caught = {"by": f"gate step {failed['name']}", "log": failed["log"], "rc": failed["rc"]}
    print(f"{env}: release {manifest.version} refused ({caught['by']}); rolling back to {previous.version}")
    started = datetime.datetime.now(datetime.UTC)
    log = make_rollback(previous, env, inventory, state_root, rollback_argv)
    seconds = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    return {
        "outcome": "rolled back",
        "version": manifest.version,
        "caught": caught,
        "rolled_back_to": previous.version,
        "rollback_seconds": round(seconds, 1),
        "rollback_log": str(log),
    }
