"""docs/delivery.md's staging-run figures (issue 16) are generated from the reports
`python -m release staging-run` (make test-delivery) writes: stage names taken from the reports, ranges over
the passed runs, each report counted once, the hand-copied runs as seeds until dropped."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from ops import figures

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

# The stages release/staging_run.py's run() names today, in its order (the fixture's, not the generator's:
# the generator takes whatever a report names).
STAGES = [
    ("lab up", 11.2),
    ("release 1", 88.4),
    ("deploy 1 (site.yml by digest)", 402.7),
    ("gate 1", 120.3),
    ("release 2 (one more label)", 40.1),
    ("upgrade to 2 (upgrade.yml by digest)", 498.6),
    ("gate 2", 150.2),
    ("release 3 (broken ERP)", 10.9),
    ("upgrade to 3, refused, make rollback", 340.4),
    ("check release 2 runs again", 3.6),
    ("verify after the rollback", 39.8),
    ("lab down", 19.5),
]
IMAGES = ["alertmanager", "blackbox_exporter", "bot", "erp", "nginx", "node_exporter", "prometheus"]


def staging_report(started: str = "20261203T100000Z", finished: str = "20261203T103000Z") -> dict:
    """A report as release/staging_run.py's Run writes it (Run.stage, Run.note, Run.release_figures,
    deploy.gated_upgrade's result as forced_failure) for a passed run."""
    version = "v0-412-g4897ad2c0a1b"
    releases = {}
    for label, suffix, manifest in (("1", "", 4610), ("2", ".r2", 4702), ("3", ".r3", 4705)):
        releases[label] = {
            "version": version + suffix,
            "manifest": f"/work/main/.state/release/{version}{suffix}/manifest.json",
            "manifest_bytes": manifest,
            "sbom_bytes": {key: 54_812 + 1_000 * n for n, key in enumerate(IMAGES)},
            "digests": {key: "sha256:" + f"{n:x}" * 64 for n, key in enumerate(IMAGES)},
        }
    return {
        "started": started,
        "stages": [{"stage": name, "ok": True, "seconds": seconds} for name, seconds in STAGES],
        "releases": releases,
        "passed": True,
        "inventory": "release/lab",
        "forced_failure": {
            "outcome": "rolled back",
            "version": version + ".r3",
            "caught": {"by": "upgrade", "error": "playbook failed", "said": "Upgrade stopped at stage"},
            "rolled_back_to": version + ".r2",
            "rollback_seconds": 312.5,
            "rollback_log": "/work/main/.state/release/deployments/staging-rollback.log",
        },
        "pages": ["/work/main/.state/release/v0-412-g4897ad2c0a1b/release.md"],
        "finished": finished,
    }


def write_report(folder: Path, report: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"staging-run-{report['started']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of what ops.figures reads and writes; the module's paths point at it (main() included)."""
    root = tmp_path / "tree"
    for name in ("ops/figures.json", *{document for document, *_ in figures.BLOCKS}):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    monkeypatch.setattr(figures, "ROOT", root)
    monkeypatch.setattr(figures, "FIGURES", root / "ops/figures.json")
    monkeypatch.setattr(figures, "DELIVERY_STATE", root / ".state/release")
    # The runs recorded since the seeds (real CI runs) would move every range below: the seeds only.
    (root / "ops/figures.json").write_text(json.dumps(seeded(), indent=2) + "\n", encoding="utf-8")
    for document, text in figures.generated(root).items():
        (root / document).write_text(text, encoding="utf-8")
    return root


def no_runs() -> dict:
    data = figures.load()
    data["delivery_runs"] = []
    return data


def seeded() -> dict:
    """ops/figures.json with only the hand-copied seed runs (whatever real runs were recorded since)."""
    data = figures.load()
    data["delivery_runs"] = [run for run in data["delivery_runs"] if run.get("seed")]
    return data


# ------------------------------------------------------------------ parsing a report


def test_a_report_becomes_a_run_with_its_own_stage_names() -> None:
    run = figures.delivery_run(staging_report(), "staging-run-20261203T100000Z.json")
    assert [(s["stage"], s["seconds"]) for s in run["stages"]] == STAGES
    assert run["passed"] is True
    assert run["seconds"] == 1800
    assert run["commit"] == "4897ad2"  # from release 1's git-describe version
    assert run["manifest_kb"] == [4.6, 4.7]
    assert run["sbom_kb"] == [54.8, 60.8]
    assert run["images"] == len(IMAGES)
    forced = {"outcome": "rolled back", "by": "upgrade", "rollback_s": 312.5, "release": 3}
    assert run["forced_failure"] == forced
    assert "forced_gate_failure" not in run  # a report from before the gate's forced failure
    assert "load" not in run  # the staging run records none yet


def test_both_forced_failures_are_kept_and_named_by_their_release() -> None:
    """Since the gate's forced failure: release 3 refused by the gate's verify, release 4 by the upgrade."""
    report = staging_report()
    version = "v0-412-g4897ad2c0a1b"
    report["forced_gate_failure"] = {
        "outcome": "rolled back", "version": version + ".r3", "rollback_seconds": 107.8,
        "caught": {"by": "gate step verify", "log": "gate-staging/verify.log", "rc": 2},
    }  # fmt: skip
    report["forced_failure"] |= {"version": version + ".r4", "rollback_seconds": 42.7}
    run = figures.delivery_run(report, "staging-run-20261203T100000Z.json")
    assert run["forced_gate_failure"] == {
        "outcome": "rolled back", "by": "gate step verify", "rollback_s": 107.8, "release": 3,
    }  # fmt: skip
    assert run["forced_failure"]["release"] == 4
    block = figures.delivery_block({**no_runs(), "delivery_runs": [run]})
    assert (
        "The release with a secret in its ERP image's environment, release 3, was caught by "
        "`gate step verify` and rolled back (`playbooks/rollback.yml` 108 s, 1 run)."
    ) in block
    assert "The broken release (an ERP that cannot start), release 4, was caught by `upgrade`" in block


def test_the_upgrade_under_load_is_summed_over_its_phases() -> None:
    report = staging_report()
    report["upgrade_under_load"] = {
        "before": {"seconds": 5.0, "sent": 19, "failed": 0},
        "upgrade erp": {"seconds": 29.0, "sent": 116, "failed": 0},
        "upgrade proxy": {"seconds": 16.0, "sent": 63, "failed": 2},
    }
    run = figures.delivery_run(report, "staging-run-20261203T100000Z.json")
    assert run["upgrade_load"] == {"sent": 198, "failed": 2}
    older = figures.delivery_run(staging_report(), "staging-run-20261203T090000Z.json")
    assert "upgrade_load" not in older  # a report from before the upgrade ran under load
    block = figures.delivery_block({**no_runs(), "delivery_runs": [run, older]})
    said = "The upgrade to release 2 under load: 198 requests through the public name, 2 failed (1 run)."
    assert said in block


def test_the_commit_is_the_manifests_while_it_is_here(tmp_path: Path) -> None:
    report = staging_report()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"commit": "0123456789abcdef" * 2 + "01234567"}), encoding="utf-8")
    report["releases"]["1"].update(manifest=str(manifest), version="v2026.12.1")
    assert figures.delivery_run(report, "r.json")["commit"] == "0123456"
    manifest.unlink()
    assert "commit" not in figures.delivery_run(report, "r.json")  # a tag, and no manifest to ask
    assert "commit not in the report" in figures.delivery_block(
        {"delivery_runs": [figures.delivery_run(report, "r.json")]}
    )


def test_a_load_average_is_read_when_a_report_has_one() -> None:
    report = staging_report()
    report["stages"][0]["load"] = [14.2, 15.0]
    report["stages"][5]["load"] = 22.7
    assert figures.delivery_run(report, "r.json")["load"] == [14.2, 22.7]
    assert figures.delivery_run({**staging_report(), "load_average": 9.5}, "r.json")["load"] == [9.5, 9.5]


def test_a_failed_run_says_where_it_stopped() -> None:
    report = staging_report()
    report["stages"] = report["stages"][:4]
    report["stages"][3].update(ok=False, error="release 1: the gate failed at verify")
    report["passed"] = False
    run = figures.delivery_run(report, "r.json")
    assert (run["passed"], run["stopped_at"]) == (False, "gate 1")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.pop("stages"), "not a staging-run report"),
        (lambda r: r.update(started="yesterday"), "not a staging-run report"),
        (lambda r: r["stages"][2].update(seconds=-3), "stage 'deploy 1 .site.yml by digest.'.*not a time"),
        (lambda r: r["stages"][2].update(seconds="402"), "not a time in seconds"),
        (lambda r: r.update(finished="soon"), "finished 'soon' is not a time"),
    ],
)
def test_a_bad_report_is_refused_with_its_name(change, reason: str) -> None:
    report = staging_report()
    change(report)
    with pytest.raises(figures.FiguresError, match=reason) as raised:
        figures.delivery_run(report, "staging-run-x.json")
    assert "staging-run-x.json" in str(raised.value)


# ------------------------------------------------------------------ ranges and the block


def test_ranges_over_the_passed_runs_only() -> None:
    data = no_runs()
    slow = staging_report("20261203T120000Z", "20261203T124500Z")
    for stage in slow["stages"]:
        stage["seconds"] = round(stage["seconds"] * 2, 1)
    failed = staging_report("20261203T140000Z", "20261203T141000Z")
    failed["stages"] = failed["stages"][:4]
    failed["stages"][3]["ok"] = False
    failed["passed"] = False
    for report in (staging_report(), slow, failed):
        data["delivery_runs"].append(figures.delivery_run(report, f"staging-run-{report['started']}.json"))
    block = figures.delivery_block(data)
    assert "| deploy 1 (site.yml by digest) | 403–805 s | 2 |" in block
    assert "| check release 2 runs again | 4–7 s | 2 |" in block
    assert "| **whole run**, lab up to lab down | 30.0–45.0 min | 2 |" in block
    assert "Over 2 passed runs: load average not recorded; manifest 4.6–4.7 KB for 7 images" in block
    assert "`playbooks/rollback.yml` 312 s, 1 run" not in block  # one value per run: two runs here
    assert "(`playbooks/rollback.yml` 312 s, 2 runs)" in block
    assert "- 2026-12-03 14:00 UTC, commit 4897ad2: FAILED at gate 1 in 10.0 min" in block
    assert "report `staging-run-20261203T100000Z.json`" in block


def test_a_stage_added_to_the_pipeline_appears_where_it_runs() -> None:
    """Another stage in a newer report (the stage list is the reports', never ops.figures'): its row comes
    after the stage it follows; a stage only an older run had stays after its predecessor."""
    data = no_runs()
    old = staging_report("20261203T100000Z", "20261203T103000Z")
    old["stages"].insert(1, {"stage": "registry warm-up (dropped later)", "ok": True, "seconds": 5.0})
    new = staging_report("20261204T100000Z", "20261204T103500Z")
    new["stages"].insert(7, {"stage": "release page of release 2", "ok": True, "seconds": 2.5})
    for report in (old, new):
        data["delivery_runs"].append(figures.delivery_run(report, "r.json"))
    rows = [line.split(" | ")[0][2:] for line in figures.delivery_block(data).splitlines()[2:16]]
    assert rows[:3] == ["lab up", "registry warm-up (dropped later)", "release 1"]
    assert rows[7:10] == ["gate 2", "release page of release 2", "release 3 (broken ERP)"]
    assert "| release page of release 2 | 2.5 s | 1 |" not in figures.delivery_block(data)  # whole seconds
    assert "| release page of release 2 | 2 s | 1 |" in figures.delivery_block(data)


def test_the_seeds_are_the_hand_copied_figures_until_dropped() -> None:
    data = seeded()
    seeds = [run for run in data["delivery_runs"] if run.get("seed")]
    assert [run["commit"] for run in seeds] == ["07a4af4", "9aa9326"]
    assert [sum(s["seconds"] for s in run["stages"]) for run in seeds] == [1802, 696]
    block = figures.delivery_block(data)
    assert "| upgrade to 2 (upgrade.yml by digest) | 109–537 s | 2 |" in block
    assert "| **whole run**, lab up to lab down | 11.6–30.4 min | 2 |" in block
    assert "hand-copied" in block
    assert "load average 12.0–24.0 (not recorded by 1 of the 2)" in block


def test_record_delivery_counts_each_report_once_and_can_drop_the_seeds(tmp_path: Path) -> None:
    data = seeded()
    folder = tmp_path / "state"
    first = write_report(folder, staging_report())
    running = write_report(folder, {**staging_report("20261203T110000Z"), "finished": None})
    figures.record_delivery(data, [first, running])
    assert [run["started"] for run in data["delivery_runs"]][-1] == "20261203T100000Z"
    assert len(data["delivery_runs"]) == 3  # two seeds, the finished report; the running one left out
    again = copy.deepcopy(data)
    figures.record_delivery(again, [first])
    assert again == data
    figures.record_delivery(data, [first], drop_seeds=True)
    assert [run["started"] for run in data["delivery_runs"]] == ["20261203T100000Z"]
    assert "hand-copied" not in figures.delivery_block(data)
    assert "| lab up | 11 s | 1 |" in figures.delivery_block(data)


def test_record_delivery_rewrites_the_block_once(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m ops.figures record-delivery` reads the reports in the release state directory, rewrites
    docs/delivery.md's block, and a second time changes nothing (idempotent)."""
    write_report(tree / ".state/release", staging_report())
    assert figures.main(["record-delivery"]) == 0
    assert "staging-run-20261203T100000Z.json: passed, 12 stages, 1800 s" in capsys.readouterr().out
    delivery = (tree / figures.DELIVERY).read_text(encoding="utf-8")
    assert "| deploy 1 (site.yml by digest) | 179–403 s | 3 |" in delivery
    assert figures.stale(tree) == []
    figures_json = (tree / "ops/figures.json").read_bytes()
    assert figures.main(["record-delivery"]) == 0
    assert "recorded already" in capsys.readouterr().out
    assert (tree / figures.DELIVERY).read_text(encoding="utf-8") == delivery
    assert (tree / "ops/figures.json").read_bytes() == figures_json
    assert figures.main(["write"]) == 0
    assert (tree / figures.DELIVERY).read_text(encoding="utf-8") == delivery


def test_record_delivery_without_a_report_says_where_it_looked(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (tree / "ops/figures.json").read_bytes()
    assert figures.main(["record-delivery"]) == 2
    assert "no staging-run report in" in capsys.readouterr().err
    (tree / "bad.json").write_text("{", encoding="utf-8")
    assert figures.main(["record-delivery", str(tree / "bad.json")]) == 2
    assert (tree / "ops/figures.json").read_bytes() == before


def test_a_hand_edit_or_a_lost_marker_in_delivery_md_is_named(tree: Path) -> None:
    path = tree / figures.DELIVERY
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("| lab up | 9–12 s |", "| lab up | 8 s |"), encoding="utf-8")
    assert figures.stale(tree) == [f"{figures.DELIVERY}: delivery figures"]
    path.write_text(text.replace("<!-- end: delivery figures -->", ""), encoding="utf-8")
    with pytest.raises(figures.FiguresError, match=r"delivery\.md: expected one block 'delivery figures'"):
        figures.generated(tree)
