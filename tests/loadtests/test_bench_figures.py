"""The benchmarks record their headline figures (issue 16): a run's figures land in
.state/figures/bench.jsonl under the keys the docs' performance block uses, and `ops.figures record`
re-renders the block from them. Only runs at the documented sizes that did not fail are recorded by
default; --record / --no-record decide otherwise."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import bench_bot, bench_erp
from ops import figures

ROOT = Path(__file__).resolve().parents[2]


def documented_keys() -> set[str]:
    """The figures a generated block shows: the checklist's performance figures, docs/erp.md's table."""
    data = figures.load()
    keys = {key for group in data["blocks"]["performance"] for key in group["figures"]}
    return keys | {key for backend in data["blocks"]["erp_bench"].values() for key in backend}


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ops.figures' records folder, in tmp_path (never the repository's .state/)."""
    folder = tmp_path / "records"
    monkeypatch.setattr(figures, "RECORDS", folder)
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the files `ops.figures record` and `write` read and change."""
    for name in ("ops/figures.json", *{document for document, *_ in figures.BLOCKS}):
        (tmp_path / "tree" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / "tree" / name)
    return tmp_path / "tree"


def wrk_result(rps: float, p99: float, non_2xx: float = 0) -> dict[str, float]:
    return {"rps": rps, "p50": 5.0, "p99": p99, "requests": rps * 10, "non_2xx": non_2xx, "socket_errors": 0}


@pytest.mark.unit
def test_the_erp_runs_figures_are_the_docs_keys() -> None:
    results = {
        "sqlite": {"get": wrk_result(1200, 40.5), "post": wrk_result(330, 90)},
        "postgresql": {"get": wrk_result(1100, 30), "post": wrk_result(250, 120)},
    }
    values, clean = bench_erp.run_figures(results, 7.5)
    assert clean
    assert values == {
        "bench.load_average": 7.5,
        "bench.erp_get_rps": 1200,
        "bench.erp_get_p99_ms": 40.5,
        "bench.erp_post_staff_sqlite_rps": 330,
        "bench.erp_get_postgresql_rps": 1100,
        "bench.erp_get_postgresql_p99_ms": 30,
        "bench.erp_post_staff_postgresql_rps": 250,
    }
    assert set(values) <= documented_keys()
    results["postgresql"]["post"]["non_2xx"] = 3  # a refused request: the run is not a measurement
    assert bench_erp.run_figures(results, 7.5)[1] is False
    assert bench_erp.run_figures({}, 1.0)[1] is False


@pytest.mark.unit
def test_the_bots_documented_sizes_are_its_defaults() -> None:
    defaults = argparse.Namespace(
        users=20, seconds=10.0, sequential=300, known_employees=10_000, open_dialogs=500, webhook_seconds=10.0
    )
    assert bench_bot.documented(defaults)
    assert bench_bot.documented(argparse.Namespace(**{**vars(defaults), "seconds": 30.0}))
    assert not bench_bot.documented(argparse.Namespace(**{**vars(defaults), "users": 2}))
    assert not bench_bot.documented(argparse.Namespace(**{**vars(defaults), "webhook_seconds": 0.0}))


@pytest.mark.unit
def test_record_run_appends_only_runs_that_count(records: Path) -> None:
    values = {"bench.sim_fanout_msgs": 900.4, "bench.load_average": 3.2}
    path = records / figures.BENCH_RECORDS
    assert "sizes differ" in figures.record_run(values, documented=False)
    assert "--no-record" in figures.record_run(values, documented=True, wanted=False)
    assert "failed" in figures.record_run(values, documented=True, ok=False, wanted=True)
    assert not path.exists()
    assert "2 lines" in figures.record_run(values, documented=True)
    assert "2 lines" in figures.record_run(values, documented=False, wanted=True)
    both = [
        {"figure": "bench.sim_fanout_msgs", "value": 900.4},
        {"figure": "bench.load_average", "value": 3.2},
    ]
    assert lines_of(path) == both * 2
    # a phase that measured nothing is left out; an unknown key is refused before anything is written
    figures.record_run({"bench.erp_get_p99_ms": float("nan")}, documented=True)
    assert len(lines_of(path)) == 4
    with pytest.raises(figures.FiguresError, match=r"bench\.nope"):
        figures.record_run({"bench.nope": 1.0}, documented=True)


@pytest.mark.unit
def test_recorded_bench_figures_rerender_the_performance_block(records: Path, tree: Path) -> None:
    figures.record_run({"bench.erp_get_rps": 150000, "bench.load_average": 0.1}, documented=True)
    data = figures.load(tree / "ops/figures.json")
    before = data["figures"]["bench.erp_get_rps"]["runs"]
    lines = (records / figures.BENCH_RECORDS).read_text(encoding="utf-8").splitlines()
    figures.record(data, lines, "bench.jsonl")
    assert data["figures"]["bench.erp_get_rps"]["runs"] == before + 1
    (tree / "ops/figures.json").write_text(json.dumps(data), encoding="utf-8")
    assert figures.stale(tree) == [f"{figures.CHECKLIST}: performance", f"{figures.ERP}: erp bench"]
    for document, text in figures.generated(tree).items():
        (tree / document).write_text(text, encoding="utf-8")
    assert figures.stale(tree) == []
    checklist = (tree / figures.CHECKLIST).read_text(encoding="utf-8")
    assert "–150,000 req/s" in checklist
    assert "load average before each recorded run" in checklist
    assert "–150,000 req/s, p99" in (tree / figures.ERP).read_text(encoding="utf-8")


@pytest.mark.integration
def test_a_simulator_benchmark_run_lands_in_the_records_and_the_docs(tmp_path: Path, tree: Path) -> None:
    """loadtests/bench_sim.py with small sizes and --record (a small run is not recorded by default):
    its messages/s and load average are appended, and `record` widens the docs' figure with them."""
    folder = tmp_path / "records"
    env = {**os.environ, "OPS_FIGURES_RECORDS": str(folder)}
    args = ["--messages", "200", "--subscribers", "5", "--publishers", "1", "--concurrency", "4"]
    small = subprocess.run(
        [sys.executable, "loadtests/bench_sim.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert small.returncode == 0, small.stdout[-2000:] + small.stderr[-2000:]
    assert "figures not recorded: sizes differ" in small.stdout
    assert not (folder / figures.BENCH_RECORDS).exists()
    run = subprocess.run(
        [sys.executable, "loadtests/bench_sim.py", *args, "--record"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "figures recorded: 2 lines" in run.stdout
    recorded = {line["figure"]: line["value"] for line in lines_of(folder / figures.BENCH_RECORDS)}
    assert set(recorded) == {"bench.sim_fanout_msgs", "bench.load_average"}
    printed = [line for line in run.stdout.splitlines() if line.startswith("RESULT messages/s")]
    assert printed, run.stdout
    assert round(recorded["bench.sim_fanout_msgs"]) == int(printed[0].rsplit(" ", 1)[1])

    data = figures.load(tree / "ops/figures.json")
    entry = data["figures"]["bench.sim_fanout_msgs"]
    low, runs = entry["low"], entry["runs"]
    lines = (folder / figures.BENCH_RECORDS).read_text(encoding="utf-8").splitlines()
    figures.record(data, lines, "bench.jsonl")
    assert entry["runs"] == runs + 1
    assert entry["low"] == min(low, round(recorded["bench.sim_fanout_msgs"]))
    (tree / "ops/figures.json").write_text(json.dumps(data), encoding="utf-8")
    for document, text in figures.generated(tree).items():
        (tree / document).write_text(text, encoding="utf-8")
    checklist = (tree / figures.CHECKLIST).read_text(encoding="utf-8")
    assert f"simulator {figures.value_range(entry)} fanned out to 100 subscribers" in checklist
