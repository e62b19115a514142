"""Benchmark figures in the runbooks, generated (issue 16): docs/operations.md's Redis backup table from
loadtests/bench_backup_redis.py's records; the bot admin guide's current figures beside its dated
before/after measurement."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from ops import figures

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def copy_tree(root: Path) -> Path:
    """A copy of the files ops.figures reads and writes."""
    for name in ("ops/figures.json", *{document for document, *_ in figures.BLOCKS}):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    return root


def test_the_redis_benchmark_records_each_run_under_the_docs_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loadtests import bench_backup_redis as bench

    runs = [
        {"snapshot_s": 9.1, "check_rdb_s": 3.0, "size_mib": 16.1, "stop_s": 0.4, "write_s": 1.0,
         "load_s": 0.9, "restore_s": 2.3, "ready_s": 1.9},
        {"snapshot_s": 12.5, "check_rdb_s": 3.2, "size_mib": 16.1, "stop_s": 0.5, "write_s": 1.1,
         "load_s": 1.0, "restore_s": 2.6, "ready_s": 2.0},
    ]  # fmt: skip
    values = bench.run_figures(runs, 14.25)
    keys = figures.load()["blocks"]["backup_redis"]
    assert set(values[0]) == {*keys["figures"], keys["load"]}
    assert set(values[1]) == set(keys["figures"])  # the load average once per benchmark
    sizes = {"keys": 100_000, "value_bytes": 200, "maxmemory": "64mb"}
    assert bench.documented(argparse.Namespace(**sizes), "container")
    assert not bench.documented(argparse.Namespace(**sizes), "local")
    assert not bench.documented(argparse.Namespace(**{**sizes, "keys": 1000}), "container")

    monkeypatch.setattr(figures, "RECORDS", tmp_path / "records")
    for run in values:
        figures.record_run(run, documented=True)
    lines = (tmp_path / "records" / figures.BENCH_RECORDS).read_text(encoding="utf-8").splitlines()
    data = figures.load()
    # What the committed figures say before these two runs are added (the ranges widen with them).
    snapshot = dict(data["figures"]["backup_redis.snapshot_s"])
    load = dict(data["figures"]["backup_redis.load_average"])
    figures.record(data, lines, "bench.jsonl")
    block = figures.redis_backup_block(data)
    assert "| snapshot taken (`redis-cli --rdb`" in block
    low, high = min(snapshot["low"], 9.1), max(snapshot["high"], 12.5)
    assert f"| {low:.1f}–{high:.1f} s | {snapshot['runs'] + 2} |" in block
    low, high = min(load["low"], 14.25), max(load["high"], 14.25)
    phrase = f"before each recorded benchmark (each runs three snapshots and restores): {low:.1f}–{high:.1f}."
    assert phrase in block
    # the docs' table follows: the block is stale, then written
    root = copy_tree(tmp_path / "tree")
    (root / "ops/figures.json").write_text(json.dumps(data), encoding="utf-8")
    assert figures.stale(root) == [f"{figures.OPERATIONS}: redis backup figures"]
    for document, text in figures.generated(root).items():
        (root / document).write_text(text, encoding="utf-8")
    assert figures.stale(root) == []


def test_the_bot_guides_current_figures_follow_the_records(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "tree")
    data = figures.load(tree / "ops/figures.json")
    data["figures"]["bench.bot_commands_per_cpu_second"].update(low=300, high=1500, runs=5)
    (tree / "ops/figures.json").write_text(json.dumps(data), encoding="utf-8")
    assert figures.stale(tree) == [f"{figures.CHECKLIST}: performance", f"{figures.BOT_GUIDE}: bot bench"]
    for document, text in figures.generated(tree).items():
        (tree / document).write_text(text, encoding="utf-8")
    guide = (tree / figures.BOT_GUIDE).read_text(encoding="utf-8")
    assert "one bot process 300–1,500 commands/s of CPU capacity" in guide
    assert "historical measurement, not current figures" in guide


@pytest.mark.parametrize(
    ("document", "block"),
    [(figures.OPERATIONS, "redis backup figures"), (figures.BOT_GUIDE, "bot bench")],
)
def test_each_block_is_rewritten_idempotently_and_a_lost_marker_is_named(
    tmp_path: Path, document: str, block: str
) -> None:
    tree = copy_tree(tmp_path / "tree")
    once = figures.generated(tree)
    (tree / document).write_text(once[document], encoding="utf-8")
    assert figures.generated(tree)[document] == once[document]
    text = once[document].replace(f"<!-- end: {block} -->", "")
    (tree / document).write_text(text, encoding="utf-8")
    with pytest.raises(figures.FiguresError, match=f"expected one block '{block}'"):
        figures.generated(tree)
