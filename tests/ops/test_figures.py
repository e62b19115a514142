"""ops.figures: the docs' generated blocks follow their sources, and recorded measurements widen the
figures' ranges (bad records refused, nothing written)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops import figures

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the files ops.figures reads and writes."""
    for name in ("ops/figures.json", *{document for document, *_ in figures.BLOCKS}):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_a_changed_figure_makes_its_block_stale_until_written(tree: Path) -> None:
    assert figures.stale(tree) == []
    data = json.loads((tree / "ops/figures.json").read_text(encoding="utf-8"))
    data["figures"]["bench.erp_get_rps"].update(low=2500, high=3100, approx=False)
    (tree / "ops/figures.json").write_text(json.dumps(data), encoding="utf-8")
    assert figures.stale(tree) == [f"{figures.CHECKLIST}: performance", f"{figures.ERP}: erp bench"]
    for document, text in figures.generated(tree).items():
        (tree / document).write_text(text, encoding="utf-8")
    assert figures.stale(tree) == []
    assert "ERP GET 2,500–3,100 req/s" in (tree / figures.CHECKLIST).read_text(encoding="utf-8")


def test_a_hand_edit_inside_a_block_is_stale(tree: Path) -> None:
    path = tree / figures.OPERATIONS
    path.write_text(path.read_text(encoding="utf-8").replace("| restart loop |", "| restart loop (edited) |"))
    assert figures.stale(tree) == [f"{figures.OPERATIONS}: drill figures"]


def test_the_open_list_follows_the_rows_statuses(tree: Path) -> None:
    path = tree / figures.CHECKLIST
    text = path.read_text(encoding="utf-8")
    assert "**SMTP for outgoing mail** (partial)" in figures.open_block(text)
    done = text.replace("| SMTP for outgoing mail | partial |", "| SMTP for outgoing mail | done |")
    path.write_text(done, encoding="utf-8")
    assert figures.stale(tree) == [f"{figures.CHECKLIST}: open"]
    assert "SMTP" not in figures.open_block(done)


def test_a_missing_block_is_named() -> None:
    with pytest.raises(figures.FiguresError, match="expected one block 'open'"):
        figures.render("no markers here", "open", False, "x", "docs/checklist.md")


def test_record_widens_the_range_and_counts_runs() -> None:
    data = figures.load()
    entry = data["figures"]["drill.restart_loop.alert_s"]
    low, high, runs = entry["low"], entry["high"], entry["runs"]
    lines = [json.dumps({"figure": "drill.restart_loop.alert_s", "value": high + 10.4}), ""]
    changes = figures.record(data, lines, "sample.jsonl")
    assert entry == {**entry, "low": low, "high": round(high + 10.4), "runs": runs + 1}
    assert len(changes) == 1
    fresh = data["figures"]["drill.disk.alert_s"]
    fresh.update(low=0, high=0, runs=0)  # never run: the first value is the range
    figures.record(data, [json.dumps({"figure": "drill.disk.alert_s", "value": 170})], "s")
    assert (fresh["low"], fresh["high"], fresh["runs"]) == (170, 170, 1)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not a figure record"),
        (json.dumps({"value": 3}), "not a figure record"),
        (json.dumps({"figure": "drill.nope", "value": 3}), "unknown figure 'drill.nope'"),
        (json.dumps({"figure": "drill.disk.alert_s", "value": -1}), "is not a measurement"),
        (json.dumps({"figure": "drill.disk.alert_s", "value": "NaN"}), "is not a measurement"),
    ],
)
def test_bad_records_are_refused_with_the_line(line: str, reason: str) -> None:
    with pytest.raises(figures.FiguresError, match=reason) as raised:
        figures.record(figures.load(), [line], "drills.jsonl")
    assert "drills.jsonl:1" in str(raised.value)


def test_the_command_checks_and_refuses_a_bad_record_without_writing(tmp_path: Path) -> None:
    """`python -m ops.figures check` passes on the repository; `record` with a bad line exits 2 and
    leaves ops/figures.json as it was."""
    check = subprocess.run(
        [sys.executable, "-m", "ops.figures", "check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr
    before = (ROOT / "ops/figures.json").read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"figure": "drill.unknown", "value": 1}\n', encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "ops.figures", "record", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "unknown figure 'drill.unknown'" in out.stderr
    assert (ROOT / "ops/figures.json").read_bytes() == before


def lab_log(when: str, text: str) -> str:
    """A result as lab/cycle.py's report() appends it to the cycle log."""
    return f"{when} {text}\n"


def test_the_lab_cycle_log_becomes_figures_once(tree: Path) -> None:
    """The passed cycles' step times in the lab's log (lab.multi's own summary lines; lab.cycle single's
    format) widen docs/lab.md's generated table; a failed cycle and a run already counted add nothing."""
    from lab import drill_erp_alerts, drill_host_faults
    from lab.multi import AGAIN_STEP, summary

    assert ("multi", AGAIN_STEP) in figures.LAB_STEPS

    single = [("lab up", 21.0), ("images (built here, pushed to the lab registry)", 200.0)]
    single += [("prerequisites (apt-get, meanwhile in the host)", 80.0)]
    single += [("wheels of requirements.txt (built here once, copied in)", 30.0)]
    single += [("make deploy-cycle (in the host)", 1900.0), ("make verify INVENTORY=… (from here)", 90.0)]
    single += [("make down PURGE=true (in the host)", 60.0), ("a step added later", 5.0)]
    multi = {"lab up": (78.4, 12.9), "site.yml again (changed=0)": (301.0, 3.0), "lab down": (35.0, 20.5)}
    multi["make verify INVENTORY=inventory/lab"] = (410.0, 9.0)
    multi["make rotate WHAT=ca (certificates re-signed, restarts)"] = (57.0, 3.5)
    multi["make verify after the rotation"] = (73.0, 2.5)
    multi["drill host loss: erp1 killed → TargetDown in the admins group"] = (335.0, 14.0)
    multi["drill host loss: erp1 started → serving through the proxy again"] = (23.0, 4.0)
    multi["drill host loss: erp1 started → resolved in the admins group"] = (291.0, 3.0)
    multi["drill host loss, whole drill (request loop start to stop)"] = (654.0, 14.0)
    multi["drill host loss: erp1 started → something new"] = (9.0, 1.0)  # unknown: left out
    multi[drill_erp_alerts.STEP] = (13.0, 2.0)
    for n, name in enumerate(drill_host_faults.STEPS.values()):
        multi[name] = (60.0 + n, 2.0)
    log = "".join(
        [
            lab_log("2026-12-01T10:00:00Z", "lab cycle single: FAILED after 900 s: make verify failed"),
            lab_log(
                "2026-12-01T11:00:00Z",
                "\n".join(
                    ["lab cycle single: passed in 2400 s"] + [f"  {n:<48} {t:6.0f} s" for n, t in single]
                ),
            ),
            lab_log("2026-12-01T12:00:00Z", "\n".join(["lab cycle multi: passed in 900 s", *summary(multi)])),
            # A quick cycle with another deploy command: its step in the host is no figure, the rest are.
            lab_log(
                "2026-12-01T12:30:00Z",
                "\n".join(
                    [
                        "lab cycle single: passed in 227 s",
                        f"  {'make up (in the host)':<48} {128:6.0f} s",
                        f"  {'make down PURGE=true (in the host)':<48} {60:6.0f} s",
                    ]
                ),
            ),
        ]
    )
    lines, last = figures.lab_records(log)
    assert last == "2026-12-01T12:30:00Z"
    recorded: dict[str, float] = {}
    for line in lines:
        item = json.loads(line)
        assert item["value"] != 128.0, item  # `make up` is not the deploy command's figure
        recorded[item["figure"]] = item["value"]
    assert recorded == {
        "lab.single.up_s": 21.0,
        "lab.single.images_s": 200.0,
        "lab.single.prerequisites_s": 80.0,
        "lab.single.wheels_s": 30.0,
        "lab.single.deploy_s": 1900.0,
        "lab.single.verify_s": 90.0,
        "lab.single.teardown_s": 60.0,
        "lab.multi.up_s": 78.0,
        "lab.multi.again_s": 301.0,
        "lab.multi.down_s": 35.0,
        "lab.multi.verify_s": 410.0,
        "lab.multi.rotate_s": 57.0,
        "lab.multi.verify_rotated_s": 73.0,
        "lab.multi.drill_alert_s": 335.0,
        "lab.multi.drill_serving_s": 23.0,
        "lab.multi.drill_resolved_1m_s": 291.0,
        "lab.multi.drill_whole_1m_s": 654.0,
        "lab.multi.drill_erp_alerts_s": 13.0,
        "lab.multi.drill_faults_restart_s": 60.0,
        "lab.multi.drill_faults_disk_s": 61.0,
        "lab.multi.drill_faults_certificate_s": 62.0,
        "lab.multi.drill_faults_whole_s": 63.0,
        "lab.multi.load_average": 20.5,
    }
    assert len(lines) == len(recorded) + 1  # the highest load of a run, once; the quick run's teardown
    assert figures.lab_records(log, last) == ([], last)  # counted once

    data = figures.load(tree / "ops/figures.json")
    for key in data["blocks"]["lab_cycle"]:
        data["figures"][key].update(low=0, high=0, runs=0)
    figures.record(data, lines, "lab log")
    (tree / "ops/figures.json").write_text(json.dumps(data), encoding="utf-8")
    assert f"{figures.LAB}: lab cycle figures" in figures.stale(tree)
    for document, text in figures.generated(tree).items():
        (tree / document).write_text(text, encoding="utf-8")
    lab = (tree / figures.LAB).read_text(encoding="utf-8")
    assert "| `python -m lab.cycle single`: lab up of `lab/single` | 21 s | 1 |" in lab
    assert "| `python -m lab.multi`: the docker layer, `playbooks/docker.yml`" in lab
    assert "none recorded yet | 0 |" in lab  # the docker layer: not in this log


def test_record_lab_without_a_log_says_so(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ops.figures", "record-lab", str(tmp_path / "missing.log")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "no lab cycle has logged here" in out.stderr


def test_a_block_inside_a_list_item_keeps_its_indented_end_marker() -> None:
    text = "- item:\n\n  <!-- generated: x (python -m ops.figures write) -->\n  old\n  <!-- end: x -->\n"
    once = figures.render(text, "x", False, "  | a |", "doc.md")
    assert (
        once
        == "- item:\n\n  <!-- generated: x (python -m ops.figures write) -->\n  | a |\n  <!-- end: x -->\n"
    )
    assert figures.render(once, "x", False, "  | a |", "doc.md") == once
