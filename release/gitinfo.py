"""What a release is made of in git: the commit, the version and the changelog.

Version scheme (docs/delivery.md): release tags are `vYEAR.MONTH.N` (CalVer, annotated or light tags).
A commit carrying such a tag releases as that version; any other commit as `git describe` names it
from the last release tag (`v2026.12.1-3-g0123456789ab`), or `v0-<count>-g<sha12>` before the first.
Every form is a valid image tag. RELEASE_VERSION overrides it (CI sets nothing).
"""

from __future__ import annotations

import re
import shutil
import subprocess  # nosec B404
from pathlib import Path

TAG_GLOB = "v[0-9]*"
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


GIT = shutil.which("git") or "/usr/bin/git"


class GitError(RuntimeError):
    """git could not answer (not a repository, unknown commit)."""


def git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603  # nosec B603
            [GIT, "-C", str(root), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args)}: no answer within 60 s") from exc
    if out.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {out.stderr.strip()[-400:]}")
    return out.stdout.strip()


def commit(root: Path, rev: str = "HEAD") -> str:
    return git(root, "rev-parse", "--verify", f"{rev}^{{commit}}")


def version(root: Path, rev: str = "HEAD", override: str = "") -> str:
    value = override or _describe(root, rev)
    if not TAG_PATTERN.match(value):
        raise GitError(f"version {value!r} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
    return value


def _describe(root: Path, rev: str) -> str:
    try:
        return git(root, "describe", "--tags", "--match", TAG_GLOB, "--abbrev=12", rev)
    except GitError:
        count = git(root, "rev-list", "--count", rev)
        return f"v0-{count}-g{commit(root, rev)[:12]}"


def previous_release_tag(root: Path, rev: str = "HEAD") -> str | None:
    """The newest release tag reachable from REV's parents (the release before this one)."""
    try:
        return git(root, "describe", "--tags", "--match", TAG_GLOB, "--abbrev=0", f"{rev}^")
    except GitError:
        return None


def changelog(root: Path, rev: str = "HEAD", limit: int = 500) -> tuple[str | None, list[str]]:
    """(previous release tag, subject lines of the commits since it, newest first)."""
    since = previous_release_tag(root, rev)
    span = f"{since}..{rev}" if since else rev
    out = git(root, "log", f"--max-count={limit}", "--format=%h %s", span)
    return since, [line for line in out.splitlines() if line]
