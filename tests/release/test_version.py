"""The version scheme and the changelog of docs/delivery.md, on a throwaway git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from release import gitinfo

pytestmark = pytest.mark.unit


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def test_versions_follow_the_release_tags_and_the_changelog_starts_after_the_last(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "first")
    head = gitinfo.commit(tmp_path)
    assert gitinfo.version(tmp_path) == f"v0-1-g{head[:12]}"
    _git(tmp_path, "tag", "v2026.12.1")
    assert gitinfo.version(tmp_path) == "v2026.12.1"
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "second")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "third")
    assert gitinfo.version(tmp_path) == f"v2026.12.1-2-g{gitinfo.commit(tmp_path)[:12]}"
    since, lines = gitinfo.changelog(tmp_path)
    assert since == "v2026.12.1"
    assert [line.split(" ", 1)[1] for line in lines] == ["third", "second"]
    _git(tmp_path, "tag", "v2026.12.2")
    assert gitinfo.version(tmp_path) == "v2026.12.2"
    assert gitinfo.changelog(tmp_path)[0] == "v2026.12.1"  # the release before this one
    with pytest.raises(gitinfo.GitError, match="not a valid image tag"):
        gitinfo.version(tmp_path, override="bad tag!")
