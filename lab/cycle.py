"""The deployment cycle of `make test-infra`, run in the lab (never on this machine's own stack).

`python -m lab.cycle single --deploy CMD --teardown CMD`: one fresh lab host (lab/single). The project's
images are built once on this machine by the container_images role (lab/playbooks/images.yml) and pushed
to the lab registry. As a new user would, the Quickstart's prerequisites are installed on the host, the
repository is copied in, and CMD (from the Makefile: `make deploy-cycle`) runs there as root: `make up`
with inventory/local, `make verify`, the second run that must report changed=0 (`--check --diff` of
site.yml and each layer playbook for real), the documented `--tags` runs, `make drill`. The only
difference from a new user's machine is which image stands behind each reference: a second inventory
source on the host (ANSIBLE_INVENTORY, LAB_VARS below) sets `container_registry` to the lab registry and
`container_images_build: false`, so `make up` pulls the project's images instead of building them.
Then, from this machine, `make verify INVENTORY=lab/single` checks the host over SSH; the containers'
ids and start times must be the same before and after (verification is read-only). Then the teardown
CMD runs there (`make down PURGE=true`) and must leave no photomatrix container. The lab is removed at
the end, also on failure (`--keep` keeps it). A stack `make up` deployed on this machine is never
touched: its containers' ids, start times and restart counts must be the same after the cycle.
"""

from __future__ import annotations

import argparse
import subprocess  # nosec B404
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import control, docker, images
from lab.remote import RemoteError, capture, copy_directory, copy_repository, run
from lab.topology import ROOT, LabConfigError, load

SINGLE_INVENTORY = ROOT / "lab" / "single"
IMAGES_PLAYBOOK = ROOT / "lab" / "playbooks" / "images.yml"
CHECKOUT = "/opt/photomatrix"
# On the host, next to inventory/local: where the project's images come from (the lab registry).
LAB_VARS = "/etc/photomatrix-lab/inventory.yml"
# On the host: the wheels of requirements.txt built here (lab/images.py), so `make setup` there installs
# the same pins without PyPI (PIP_NO_INDEX, PIP_FIND_LINKS).
WHEELS = "/var/cache/photomatrix-lab-wheels"
# What README's Prerequisites install on a fresh Debian 12 machine before `make up` (curl: the runbooks).
PREREQUISITES = "make python3-venv git curl"
LOG = Path("/var/log/photomatrix-lab-cycle.log")
# Node exporter's default filesystem types to leave out, minus overlay: a lab host's / (roles/monitoring).
LAB_FS_TYPES_EXCLUDE = (
    "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|"
    "nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$"
)
SNAPSHOT = (
    "sudo docker ps --all --quiet --no-trunc --filter name=^photomatrix- | sort | "
    "xargs -r sudo docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}} {{.RestartCount}}'"
)


def this_machines_stack(prefix: str = "photomatrix-") -> str:
    """What `make up` deployed on this machine, if anything: the cycle must leave it as it was."""
    names = docker.run(["ps", "--all", "--quiet", "--no-trunc", "--filter", f"name=^{prefix}"]).split()
    if not names:
        return ""
    return docker.run(
        ["inspect", "--format", "{{.Name}} {{.Id}} {{.State.StartedAt}} {{.RestartCount}}", *sorted(names)]
    )


class CycleError(RuntimeError):
    """A step of the cycle failed its check."""


def _push_images(inventory: Path) -> float:
    """Build the project's images here (the role's own build tasks) and push them to the lab registry."""
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603  # nosec B603
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(IMAGES_PLAYBOOK)],
        cwd=ROOT,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise CycleError(f"building and pushing the images ({IMAGES_PLAYBOOK.relative_to(ROOT)}) failed")
    return time.monotonic() - started


def lab_vars(lab) -> str:
    """The second inventory source on the host: the images come from the lab registry, prebuilt."""
    return (
        "# Written by lab/cycle.py: inventory/local's images are pulled from the lab registry.\n"
        "all:\n  vars:\n"
        f'    container_registry: "{lab.registry}"\n'
        "    container_images_build: false\n"
        '    container_images_official: "false"\n'
        "    # The host is a container: its / is an overlay, which node exporter leaves out by default.\n"
        f'    monitoring_node_exporter_fs_types_exclude: "{LAB_FS_TYPES_EXCLUDE}"\n'
    )


def _verify_from_here(inventory: Path) -> float:
    started = time.monotonic()
    name = inventory.relative_to(ROOT) if inventory.is_relative_to(ROOT) else inventory
    result = subprocess.run(  # noqa: S603  # nosec B603
        ["/usr/bin/make", "--no-print-directory", "verify", f"INVENTORY={name}"],
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise CycleError(f"make verify INVENTORY={name} failed")
    return time.monotonic() - started


def single(
    deploy: str, teardown: str, keep: bool = False, inventory: Path = SINGLE_INVENTORY
) -> dict[str, float]:
    lab = load(inventory)
    (host,) = lab.hosts
    with control.lock(lab):
        own = this_machines_stack()
        figures = _single(lab, host, deploy, teardown, keep)
        after = this_machines_stack()
        if after != own:
            raise CycleError(
                f"this machine's own stack (make up here) changed during the cycle:\nbefore:\n{own}\n"
                f"after:\n{after}"
            )
        return figures


def _single(lab, host: str, deploy: str, teardown: str, keep: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    apt = "sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q"
    control.down(lab)  # a fresh host: nothing left from an earlier run
    try:
        figures["lab up"] = control.up(lab)["total"]
        # The host installs the prerequisites while this machine builds and pushes the images.
        with ThreadPoolExecutor(max_workers=1) as pool:
            prerequisites = pool.submit(
                run,
                lab,
                host,
                f"{apt} update && {apt} install -y --no-install-recommends {PREREQUISITES}",
                timeout=900,
            )
            figures["images (built here, pushed to the lab registry)"] = _push_images(lab.inventory)
            figures["prerequisites (apt-get, meanwhile in the host)"] = prerequisites.result()
        with tempfile.TemporaryDirectory(prefix="lab-source-") as tmp:
            copy_repository(lab, host, CHECKOUT, Path(tmp) / "source.tar.gz")
        run(
            lab,
            host,
            f"sudo mkdir -p {Path(LAB_VARS).parent} && sudo tee {LAB_VARS} >/dev/null",
            timeout=60,
            stdin=lab_vars(lab).encode(),
        )
        mark = time.monotonic()
        copy_directory(lab, host, images.wheelhouse(), WHEELS)
        figures["wheels of requirements.txt (built here once, copied in)"] = time.monotonic() - mark
        as_root = (
            f"cd {CHECKOUT} && sudo env ANSIBLE_INVENTORY=inventory/local,{LAB_VARS}"
            f" PIP_NO_INDEX=1 PIP_FIND_LINKS={WHEELS}"
        )
        figures[f"{deploy} (in the host)"] = run(lab, host, f"{as_root} {deploy}", timeout=5400)
        before = capture(lab, host, SNAPSHOT)
        if "photomatrix-proxy" not in before:
            raise CycleError(f"no stack on {host} after `{deploy}`:\n{before}")
        figures["make verify INVENTORY=… (from here)"] = _verify_from_here(lab.inventory)
        after = capture(lab, host, SNAPSHOT)
        if after != before:
            raise CycleError(
                f"verification changed the containers on {host}:\nbefore:\n{before}\nafter:\n{after}"
            )
        figures[f"{teardown} (in the host)"] = run(lab, host, f"{as_root} {teardown}", timeout=900)
        left = capture(lab, host, SNAPSHOT)
        if left.strip():
            raise CycleError(f"`{teardown}` left containers on {host}:\n{left}")
    finally:
        if not keep:
            control.down(lab)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.cycle", description=__doc__)
    parser.add_argument("cycle", choices=["single"])
    parser.add_argument("--deploy", required=True, help="command run as root in the host's checkout")
    parser.add_argument("--teardown", required=True, help="command run as root in the host's checkout")
    parser.add_argument("--keep", action="store_true", help="leave the lab running at the end")
    parser.add_argument(
        "-i", "--inventory", type=Path, default=SINGLE_INVENTORY, help="a one-host lab inventory (lab/single)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        figures = single(args.deploy, args.teardown, keep=args.keep, inventory=args.inventory.resolve())
    except (LabConfigError, docker.DockerError, RemoteError, CycleError) as exc:
        report(f"lab cycle {args.cycle}: FAILED after {time.monotonic() - started:.0f} s: {exc}", sys.stderr)
        return 1
    lines = [f"lab cycle {args.cycle}: passed in {time.monotonic() - started:.0f} s"]
    lines += [f"  {name:<48} {seconds:6.0f} s" for name, seconds in figures.items()]
    report("\n".join(lines), sys.stdout)
    return 0


def report(text: str, stream) -> None:
    """On the terminal, and appended to the cycle log (when, which result, the times of each step)."""
    print(text, file=stream, flush=True)
    try:
        with LOG.open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}\n")
    except OSError as exc:
        print(f"lab cycle: cannot append to {LOG}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
