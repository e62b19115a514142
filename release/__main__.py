"""`python -m release build|deploy|rollback|gate|promote|page|pipeline|staging-run` (docs/delivery.md)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from release import build, deploy, gate, page, staging_run
from release.manifest import ManifestError, load
from release.registry import RegistryError

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state" / "release"
INVENTORIES = {"staging": "inventory/staging", "production": "inventory/production"}


def _inventory(args: argparse.Namespace) -> Path:
    return Path(args.inventory or INVENTORIES.get(args.env, f"inventory/{args.env}"))


def _latest(state: Path) -> Path:
    pointer = state / "LATEST"
    if not pointer.is_file():
        raise ManifestError(f"no MANIFEST given and no release recorded in {state}: run make release first")
    return Path(pointer.read_text().strip())


def _manifest(args: argparse.Namespace):
    return load(Path(args.manifest) if args.manifest else _latest(args.state))


def _target(args: argparse.Namespace) -> str:
    if args.target:
        return args.target
    raise SystemExit(
        "the gate needs TARGET=https://… (the environment's public URL) for the smoke load profile"
    )


def _gate_and_rollback(args, manifest, env: str, inventory: Path, steps) -> int:
    """Gate ENV; on failure roll back to the previous manifest (an upgrade) and fail."""
    history = deploy.History(args.state, env)
    current = history.current()
    # Only the release that runs there now is rolled back (a gate of another manifest changes nothing).
    previous = history.previous() if current and current["sha256"] == manifest.sha256 else None
    record = gate.run(manifest, env, steps)
    if record["passed"]:
        return 0
    failed = record["steps"][-1]["name"]
    print(f"gate {env}: release {manifest.version} FAILED at {failed}", file=sys.stderr)
    if previous is not None:
        print(
            f"gate {env}: rolling back to {previous['version']} (deploy by digest of the previous manifest)"
        )
        back = deploy.rollback(env, inventory, args.state, args.registry_ca, args.playbook)
        print(f"gate {env}: rolled back to {back.version}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release", description=__doc__)
    parser.add_argument(
        "--state", type=Path, default=STATE, help="release directories and environment history"
    )
    parser.add_argument(
        "--registry-ca", type=Path, help="CA of the registry (default /etc/docker/certs.d/<registry>)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def env_args(p: argparse.ArgumentParser, default_env: str) -> None:
        p.add_argument("--env", default=default_env)
        p.add_argument("--inventory", help="default inventory/<env>")
        p.add_argument("--manifest", help="default the latest release")
        p.add_argument("--playbook", default="playbooks/site.yml", help="the deployment playbook")

    p = sub.add_parser("build", help="make release")
    p.add_argument("--env", default="staging", help="whose registry (its inventory's container_registry)")
    p.add_argument("--registry", help="host:port (default the inventory's container_registry)")
    p.add_argument("--inventory")
    p.add_argument("--version", default="", help="override the version from git")
    p.add_argument("--rev", default="HEAD", help="the commit to release (default HEAD)")
    for name in ("deploy", "rollback", "gate", "promote", "page", "pipeline"):
        q = sub.add_parser(name)
        env_args(q, "production" if name == "promote" else "staging")
        if name in ("gate", "pipeline", "promote"):
            q.add_argument("--target", help="public URL of the environment for the smoke load profile")
        if name == "pipeline":
            q.add_argument("--registry")
            q.add_argument("--version", default="")
    p = sub.add_parser(
        "staging-run",
        help="the pipeline for real against a lab: release, deploy, gate, upgrade, gate, a broken "
        "release rolled back, pages; lab up and down",
    )
    p.add_argument("-i", "--inventory", default="release/lab", help="the lab standing for staging")
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    p.add_argument("--version", default="", help="override release 1's version from git")
    p.add_argument("--rev", default="HEAD", help="the commit release 1 is built from (default HEAD)")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}

    def timed(stage: str, fn, *a, **kw):
        started = time.monotonic()
        try:
            return fn(*a, **kw)
        finally:
            timings[stage] = round(time.monotonic() - started, 1)
            print(f"stage {stage}: {timings[stage]} s", flush=True)

    def deploy_timed(manifest, inventory: Path, **kw):
        return timed(
            "deploy",
            deploy.deploy,
            manifest,
            args.env,
            inventory,
            args.state,
            args.registry_ca,
            args.playbook,
            **kw,
        )

    stack = contextlib.ExitStack()
    try:
        if args.command == "staging-run":
            rc, _ = staging_run.run(
                Path(args.inventory),
                args.state,
                args.registry_ca,
                keep=args.keep,
                version=args.version,
                rev=args.rev,
            )
            return rc
        if args.command in ("build", "pipeline"):
            registry = args.registry or deploy.inventory_registry(
                Path(args.inventory) if args.inventory else _inventory(args)
            )
            path = timed(
                "release",
                build.release,
                registry,
                args.state,
                version_override=args.version,
                rev=getattr(args, "rev", "HEAD"),
                ca=args.registry_ca,
            )
            (args.state / "LATEST").write_text(f"{path}\n")
            print(f"release manifest: {path}")
            if args.command == "build":
                return 0
            args.manifest = str(path)
        if args.command == "promote" and args.env == "staging":
            raise SystemExit("promote is for environments after staging; use make deploy ENV=staging")
        if args.command == "deploy" and args.env == "production":
            raise SystemExit("production takes only a gated release: make promote ENV=production MANIFEST=…")
        manifest = _manifest(args)
        inventory = _inventory(args)
        if args.command == "deploy":
            deploy_timed(manifest, inventory)
        elif args.command == "rollback":
            back = deploy.rollback(args.env, inventory, args.state, args.registry_ca, args.playbook)
            print(f"{args.env}: rolled back to {back.version}")
        elif args.command == "gate":
            out = manifest.directory / f"gate-{args.env}"
            # The checks that ship with the release run against it, from its own tree.
            with deploy.release_tree(manifest.commit, inventory) as tree:
                steps = gate.default_steps(inventory, _target(args), out, tree)
                return timed("gate", _gate_and_rollback, args, manifest, args.env, inventory, steps)
        elif args.command == "promote":
            gate.check(manifest, "staging")
            previous = deploy.History(args.state, args.env).current()
            deploy_timed(manifest, inventory, how="promote")
            post = [gate.Step("verify", ["make", "verify", f"INVENTORY={inventory}"])]
            rc = timed("post-deploy verify", _gate_and_rollback, args, manifest, args.env, inventory, post)
            if rc != 0 and previous is None:
                print(f"{args.env}: nothing to roll back to (first release there)", file=sys.stderr)
            return rc
        elif args.command == "page":
            print(f"release page: {page.render(manifest)}")
        elif args.command == "pipeline":
            out = manifest.directory / f"gate-{args.env}"
            tree = stack.enter_context(deploy.release_tree(manifest.commit, inventory))
            steps = gate.default_steps(inventory, _target(args), out, tree)
            if deploy.History(args.state, args.env).current() is None:
                deploy_timed(manifest, inventory)
                rc = timed("gate", _gate_and_rollback, args, manifest, args.env, inventory, steps)
            else:
                # An environment running a release is upgraded; a failed upgrade or gate: make rollback.
                outcome = timed(
                    "upgrade and gate",
                    deploy.gated_upgrade,
                    manifest,
                    args.env,
                    inventory,
                    args.state,
                    args.registry_ca,
                    lambda: gate.run(manifest, args.env, steps),
                )
                print(f"{args.env}: {outcome}")
                rc = 0 if outcome["outcome"] == "passed" else 1
            print(f"release page: {page.render(manifest)}")
            print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()))
            return rc
    except (
        ManifestError,
        RegistryError,
        build.ReleaseError,
        deploy.DeployError,
        gate.GateError,
        build.gitinfo.GitError,
        build.docker.DockerError,
        staging_run.StagingRunError,
    ) as exc:
        print(f"release {args.command}: {exc}", file=sys.stderr)
        return 2
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
