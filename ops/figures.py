"""Figures and lists in the docs, generated: `python -m ops.figures write|check|record FILE…`.

The measured figures live in `ops/figures.json`, one entry per figure, each a range over the runs
recorded so far and the script that measures it. Scripts that measure (the failure drills in
`tests/infra/test_drill_*.py` into drills.jsonl; the benchmarks `loadtests/bench_*.py` into bench.jsonl,
through `record_run`) write JSON lines `{"figure": KEY, "value": NUMBER}` to `.state/figures/*.jsonl`
(OPS_FIGURES_RECORDS: another folder); `record` widens each figure's range
with them and sets each file aside as FILE.recorded (so no run is counted twice). `write` renders every
marked block of the docs from ops/figures.json and from the code (the "What is open" list of
docs/checklist.md is the checklist's own rows that are not done); `check` fails, naming the block, when
a document differs from what `write` would produce
(tests/test_docs.py runs it). `record-lab` reads the lab cycles' log; `record-delivery [REPORT…]` adds the
staging runs' reports (make test-delivery's .state/release/staging-run-*.json; stage names are the
reports') to ops/figures.json's `delivery_runs`, each once, and renders docs/delivery.md's table from them.

A block is `<!-- generated: NAME (python -m ops.figures write) -->` … `<!-- end: NAME -->`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "ops" / "figures.json"
RECORDS = Path(os.environ.get("OPS_FIGURES_RECORDS") or ROOT / ".state" / "figures")
BENCH_RECORDS = "bench.jsonl"  # loadtests/bench_*.py; the drills write drills.jsonl
CHECKLIST = "docs/checklist.md"
OPERATIONS = "docs/operations.md"
LAB = "docs/lab.md"
ERP = "docs/erp.md"
DELIVERY = "docs/delivery.md"
BOT_GUIDE = "docs/bot-admin-guide.md"
# Where `python -m release staging-run` (make test-delivery) writes its reports by default:
# release/__main__.py's STATE (its --state), <state>/staging-run-<stamp>.json (release/staging_run.py).
DELIVERY_STATE = ROOT / ".state" / "release"
LAB_LOG = Path("/var/log/photomatrix-lab-cycle.log")  # lab/cycle.py's report(): the cycles' results


class FiguresError(Exception):
    """A bad figures file, record or document block: the message says which and why."""


def load(path: Path = FIGURES) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FiguresError(f"{path}: {exc}") from exc
    for key, entry in data["figures"].items():
        missing = {"low", "high", "runs", "unit", "by"} - set(entry)
        if missing:
            raise FiguresError(f"{path}: figure {key} lacks {sorted(missing)}")
        if entry["low"] > entry["high"]:
            raise FiguresError(f"{path}: figure {key} has low {entry['low']} above high {entry['high']}")
    return data


def number(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def value_range(entry: dict) -> str:
    """ "~3,000 req/s" (one value or approx), "1,400–1,900 msg/s", "0.60–0.75×"; "none recorded yet"."""
    if entry["runs"] == 0:
        return "none recorded yet"
    decimals = int(entry.get("decimals", 0))
    low, high = number(entry["low"], decimals), number(entry["high"], decimals)
    figure = f"~{low}" if low == high and entry.get("approx") else low if low == high else f"{low}–{high}"
    unit = entry["unit"]
    return f"{figure}{unit}" if unit in ("×", "%") else f"{figure} {unit}".rstrip()


def phrase(data: dict, key: str) -> str:
    """The figure in its words: the label with the value at `{}` (or after it), then the suffix."""
    entry = data["figures"][key]
    label = entry.get("label", "")
    text = label.replace("{}", value_range(entry)) if "{}" in label else f"{label} {value_range(entry)}"
    return f"{text.strip()}{entry.get('suffix', '')}"


def performance_block(data: dict) -> str:
    groups = data["blocks"]["performance"]
    parts = []
    for group in groups:
        figures = "; ".join(phrase(data, key) for key in group["figures"])
        parts.append(f"{group['title']}: {figures}")
    return " — ".join(parts)


def drills_block(data: dict) -> str:
    rows = ["| Drill | Alert after (s) | Recovered in (s) | Runs |", "|---|---|---|---|"]
    for drill in data["blocks"]["drills"]:
        alert, recovery = data["figures"][drill["alert"]], data["figures"][drill["recovery"]]
        runs = min(alert["runs"], recovery["runs"])
        rows.append(f"| {drill['title']} | {value_range(alert)} | {value_range(recovery)} | {runs} |")
    timings = [phrase(data, key) for key in data["blocks"]["drill_timings"]]
    return "\n".join(rows) + "\n\n" + "; ".join(timings) + "."


def erp_bench_block(data: dict) -> str:
    """docs/erp.md's table (inside a list item, so indented): GET req/s and p99, POST req/s per backend."""
    rows = ["| Backend | GET `/staff?rocketchat_username=` | POST `/staff` |", "|---|---|---|"]
    for title, name in (("SQLite", "sqlite"), ("PostgreSQL 15", "postgresql")):
        get, p99, post = (value_range(data["figures"][key]) for key in data["blocks"]["erp_bench"][name])
        rows.append(f"| {title} | {get}, p99 {p99} | {post} |")
    return "\n".join(f"  {row}" for row in rows)


def lab_block(data: dict) -> str:
    rows = ["| Cycle step | Time | Runs |", "|---|---|---|"]
    for key in data["blocks"]["lab_cycle"]:
        entry = data["figures"][key]
        rows.append(f"| {entry['label']} | {value_range(entry)} | {entry['runs']} |")
    return "\n".join(rows)


def checklist_rows(text: str) -> list[tuple[str, str, str]]:
    """(section title, item in English, status) of every row of docs/checklist.md's tables."""
    rows, section = [], ""
    for line in text.splitlines():
        heading = re.match(r"^## \d+\. .* — (.+)$", line)
        if heading:
            section = heading.group(1).strip()
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and cells[2] not in {"Status", "---"}:
            rows.append((section, cells[1], cells[2]))
    return rows


def open_block(text: str) -> str:
    lines = [
        f"- {section}: **{item}** ({status})"
        for section, item, status in checklist_rows(text)
        if status != "done"
    ]
    return "\n".join(lines) if lines else "- Nothing: every item is done."


def figures_table(data: dict, keys: list[str], heading: str) -> str:
    """A table of figures: each one's `row` (or label), its range and its number of runs."""
    rows = [f"| {heading} | Value | Runs |", "|---|---|---|"]
    for key in keys:
        entry = data["figures"][key]
        rows.append(f"| {entry.get('row') or entry['label']} | {value_range(entry)} | {entry['runs']} |")
    return "\n".join(rows)


def redis_backup_block(data: dict) -> str:
    """docs/operations.md: loadtests/bench_backup_redis.py's figures, and the load they were taken at."""
    block = data["blocks"]["backup_redis"]
    table = figures_table(data, block["figures"], block["heading"])
    return f"{table}\n\n{phrase(data, block['load'])}."


def bot_bench_block(data: dict) -> str:
    """The bot admin guide's current figures (the same as the checklist's performance block)."""
    return "; ".join(phrase(data, key) for key in data["blocks"]["bot_bench"])


# ------------------------------------------------------------------ the staging runs (make test-delivery)

STAMP = "%Y%m%dT%H%M%SZ"  # release/staging_run.py's _now()
COMMIT_IN_VERSION = re.compile(r"-g([0-9a-f]{7,40})(?:\.|$)")  # git describe's form (docs/delivery.md)


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise FiguresError(f"{what}: {value!r} is not a time in seconds")
    return float(value)


def _loads(report: dict) -> list[float]:
    """Load averages the report holds: a top-level `load_average` (a number or a list) and a `load`
    beside any stage (a number, or a list such as [at its start, at its end]). The staging run does not
    write them yet; read when it does."""
    found: list[float] = []
    for value in [report.get("load_average"), *(s.get("load") for s in report.get("stages", []))]:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item):
                found.append(float(item))
    return found


def release_commit(release: dict) -> str:
    """The commit release 1 was built from: its manifest's `commit` while the manifest is on this machine,
    else the one git describe put in its version (v…-g<sha>); '' when neither says."""
    try:
        manifest = json.loads(Path(str(release["manifest"])).read_text(encoding="utf-8"))
        if isinstance(manifest.get("commit"), str) and manifest["commit"]:
            return manifest["commit"]
    except (KeyError, OSError, ValueError, AttributeError):
        pass
    found = COMMIT_IN_VERSION.search(str(release.get("version", "")))
    return found.group(1) if found else ""


def delivery_run(report: dict, origin: str) -> dict:
    """The figures of one staging-run report (release/staging_run.py's Run.report) as ops/figures.json
    keeps them in `delivery_runs`: stage names and times as the report has them (in its order), whether it
    passed, its whole time, the load averages it recorded, the manifests' and SBOMs' sizes, what the
    forced failure was caught by."""
    if not isinstance(report, dict):
        raise FiguresError(f"{origin}: not a staging-run report (a JSON object)")
    try:
        started = str(report["started"])
        datetime.datetime.strptime(started, STAMP)
        stages = [
            {"stage": str(s["stage"]), "seconds": _seconds(s["seconds"], f"{origin}: stage {s['stage']!r}"),
             "ok": bool(s.get("ok"))}
            for s in report["stages"]
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise FiguresError(f"{origin}: not a staging-run report ({type(exc).__name__}: {exc})") from exc
    run: dict = {"started": started, "source": origin, "passed": report.get("passed") is True}
    run["stages"] = stages
    if report.get("finished"):
        try:
            end = datetime.datetime.strptime(str(report["finished"]), STAMP)
        except ValueError as exc:
            raise FiguresError(f"{origin}: finished {report['finished']!r} is not a time ({exc})") from exc
        run["seconds"] = (end - datetime.datetime.strptime(started, STAMP)).total_seconds()
    failed = [s["stage"] for s in stages if not s["ok"]]
    if failed:
        run["stopped_at"] = failed[0]
    elif not run["passed"] and report.get("error"):
        run["stopped_at"] = str(report["error"])[:200]
    loads = _loads(report)
    if loads:
        run["load"] = [min(loads), max(loads)]
    releases = report.get("releases") or {}
    manifests = [r["manifest_bytes"] for r in releases.values() if isinstance(r.get("manifest_bytes"), int)]
    sboms = [b for r in releases.values() for b in (r.get("sbom_bytes") or {}).values() if isinstance(b, int)]
    if manifests:
        run["manifest_kb"] = [round(min(manifests) / 1000, 1), round(max(manifests) / 1000, 1)]
    if sboms:
        run["sbom_kb"] = [round(min(sboms) / 1000, 1), round(max(sboms) / 1000, 1)]
        run["images"] = max(len(r.get("sbom_bytes") or {}) for r in releases.values())
    commit = report.get("commit") or release_commit(releases.get("1") or {})
    if commit:
        run["commit"] = str(commit)[:7]
    # The forced failures: a release the gate refuses (forced_gate_failure, release 3 since the gate
    # run) and one the upgrade refuses (forced_failure: release 3 before, release 4 since).
    for key in ("forced_gate_failure", "forced_failure"):
        caught = report.get(key)
        if not isinstance(caught, dict):
            continue
        forced: dict = {"outcome": str(caught.get("outcome", ""))}
        by = (caught.get("caught") or {}).get("by") if isinstance(caught.get("caught"), dict) else None
        if by:
            forced["by"] = str(by)
        if isinstance(caught.get("rollback_seconds"), int | float):
            forced["rollback_s"] = float(caught["rollback_seconds"])
        number = re.search(r"\.r(\d+)$", str(caught.get("version", "")))
        if number:
            forced["release"] = int(number.group(1))
        run[key] = forced
    # The upgrade to release 2 under the upgrade drill's load (since 2026-12-05): requests and failures.
    phases = report.get("upgrade_under_load")
    if isinstance(phases, dict) and phases:
        rows = [row for row in phases.values() if isinstance(row, dict)]
        run["upgrade_load"] = {
            "sent": sum(int(row.get("sent", 0)) for row in rows),
            "failed": sum(int(row.get("failed", 0)) for row in rows),
        }
    return run


def delivery_reports(paths: list[Path], recorded: set[str]) -> tuple[list[dict], list[str]]:
    """The runs of the reports PATHS not yet in RECORDED (their `started`), and what was left out and why
    (a report still being written: no `finished`)."""
    runs, skipped = [], []
    for path in sorted(paths):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise FiguresError(f"{path}: {exc}") from exc
        run = delivery_run(report, path.name)
        if run["started"] in recorded:
            skipped.append(f"{path.name}: recorded already")
        elif "seconds" not in run:
            skipped.append(f"{path.name}: not finished (a staging run still going, or killed): left out")
        else:
            recorded.add(run["started"])
            runs.append(run)
    return runs, skipped


def stage_order(runs: list[dict]) -> list[str]:
    """Every stage name of RUNS, in the newest run's order; a stage only older runs had stays after the
    stage it followed there (a stage added, renamed or removed is never guessed at)."""
    order: list[str] = []
    for run in sorted(runs, key=run_key, reverse=True):
        previous = None
        for stage in (s["stage"] for s in run["stages"]):
            if stage not in order:
                order.insert(order.index(previous) + 1 if previous else 0, stage)
            previous = stage
    return order


def run_key(run: dict) -> tuple[str, str]:
    return (run.get("date", ""), run.get("started", "")) if run.get("seed") else ("~", run["started"])


def span(values: list[float], decimals: int = 0, unit: str = "") -> str:
    """`low–high unit`, or one value."""
    low, high = number(min(values), decimals), number(max(values), decimals)
    text = low if low == high else f"{low}–{high}"
    return f"{text} {unit}".rstrip()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def run_when(run: dict) -> str:
    if run.get("seed"):
        return run["date"]
    when = datetime.datetime.strptime(run["started"], STAMP)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def delivery_block(data: dict) -> str:
    """docs/delivery.md: each stage's time over the passed staging runs recorded in ops/figures.json
    (`delivery_runs`), the whole run's, sizes, the forced failure, then every run with its load."""
    runs = sorted(data.get("delivery_runs", []), key=run_key)
    passed = [run for run in runs if run["passed"]]
    if not passed:
        table = "No passed staging run recorded yet (`python -m ops.figures record-delivery`)."
    else:
        rows = ["| Stage | Time | Passed runs |", "|---|---|---|"]
        for stage in stage_order(passed):
            times = [s["seconds"] for run in passed for s in run["stages"] if s["stage"] == stage]
            rows.append(f"| {stage.replace('|', '/')} | {span(times, unit='s')} | {len(times)} |")
        whole = [run["seconds"] / 60 for run in passed]
        rows.append(f"| **whole run**, lab up to lab down | {span(whole, 1, 'min')} | {len(whole)} |")
        table = "\n".join(rows)
    lines = [table, ""]
    loads = [value for run in passed for value in run.get("load", [])]
    without = sum(1 for run in passed if not run.get("load"))
    load = f"load average {span(loads, 1)}" if loads else "load average not recorded"
    if loads and without:
        load += f" (not recorded by {without} of the {len(passed)})"
    manifests = [kb for run in passed for kb in run.get("manifest_kb", [])]
    sboms = [kb for run in passed for kb in run.get("sbom_kb", [])]
    images = sorted({run["images"] for run in passed if "images" in run})
    sizes = []
    if manifests:
        sizes.append(f"manifest {span(manifests, 1, 'KB')} for {' or '.join(map(str, images))} images")
    if sboms:
        sizes.append(f"SBOMs {span(sboms, 1, 'KB')} each")
    if passed:
        sized = f"; {'; '.join(sizes)}." if sizes else "."
        lines.append(f"Over {plural(len(passed), 'passed run')}: {load}{sized}")
    kinds = (
        ("forced_gate_failure", "The release with a secret in its ERP image's environment"),
        ("forced_failure", "The broken release (an ERP that cannot start)"),
    )
    for key, what in kinds:
        forced = [run[key] for run in passed if key in run]
        if not forced:
            continue
        numbers = sorted({f.get("release", 3) for f in forced})
        by = sorted({f.get("by", "?") for f in forced})
        rollback = [f["rollback_s"] for f in forced if "rollback_s" in f]
        text = (
            f"{what}, release {' or '.join(map(str, numbers))}, was caught by "
            f"{', '.join(f'`{b}`' for b in by)} and rolled back"
        )
        if rollback:
            text += f" (`playbooks/rollback.yml` {span(rollback, unit='s')}, {plural(len(rollback), 'run')})"
        lines += ["", text + "."]
    loaded = [run["upgrade_load"] for run in passed if "upgrade_load" in run]
    if loaded:
        lines += [
            "",
            f"The upgrade to release 2 under load: {span([u['sent'] for u in loaded])} requests through the "
            f"public name, {span([u['failed'] for u in loaded])} failed ({plural(len(loaded), 'run')}).",
        ]
    lines += ["", "Runs:"]
    for run in runs:
        verdict = "passed" if run["passed"] else f"FAILED at {run.get('stopped_at', '?')}"
        minutes = f" in {number(run['seconds'] / 60, 1)} min" if "seconds" in run else ""
        load = f"load average {span(run['load'], 1)}" if run.get("load") else "load not recorded"
        if run.get("load_note"):
            load += f" ({run['load_note']})"
        where = f"commit {run['commit']}" if run.get("commit") else "commit not in the report"
        source = run.get("seed") or f"report `{run['source']}`"
        lines.append(f"- {run_when(run)}, {where}: {verdict}{minutes}, {load}; {source}")
    if not runs:
        lines.append("- none recorded yet")
    return "\n".join(lines)


# (document, block name, inline?, renderer of (figures data, current document text))
BLOCKS: list[tuple[str, str, bool, Callable[[dict, str], str]]] = [
    (CHECKLIST, "performance", True, lambda data, _: performance_block(data)),
    (CHECKLIST, "open", False, lambda _, text: open_block(text)),
    (OPERATIONS, "drill figures", False, lambda data, _: drills_block(data)),
    (LAB, "lab cycle figures", False, lambda data, _: lab_block(data)),
    (ERP, "erp bench", False, lambda data, _: erp_bench_block(data)),
    (OPERATIONS, "redis backup figures", False, lambda data, _: redis_backup_block(data)),
    (BOT_GUIDE, "bot bench", True, lambda data, _: bot_bench_block(data)),
    (DELIVERY, "delivery figures", False, lambda data, _: delivery_block(data)),
]


def block_pattern(name: str, inline: bool) -> re.Pattern[str]:
    start = re.escape(f"<!-- generated: {name} (python -m ops.figures write) -->")
    end = re.escape(f"<!-- end: {name} -->")
    gap, indent = ("", "") if inline else (r"\n", r"[ \t]*")  # an end marker may be indented (a list item)
    return re.compile(f"({start}{gap})(.*?)({indent}{end})", re.S)


def render(text: str, name: str, inline: bool, body: str, document: str) -> str:
    pattern = block_pattern(name, inline)
    if len(pattern.findall(text)) != 1:
        raise FiguresError(f"{document}: expected one block '{name}' (<!-- generated: {name} … -->)")
    body = body if inline else body + "\n"
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text)


def generated(root: Path = ROOT, data: dict | None = None) -> dict[str, str]:
    """{document: its text with every block rendered}."""
    data = load(root / "ops" / "figures.json") if data is None else data
    texts: dict[str, str] = {}
    for document, name, inline, renderer in BLOCKS:
        text = texts.get(document) or (root / document).read_text(encoding="utf-8")
        texts[document] = render(text, name, inline, renderer(data, text), document)
    return texts


def stale(root: Path = ROOT) -> list[str]:
    """Names of the blocks whose document text differs from the rendering."""
    found = []
    texts = generated(root)
    for document, name, inline, _ in BLOCKS:
        pattern = block_pattern(name, inline)
        now = pattern.search((root / document).read_text(encoding="utf-8"))
        want = pattern.search(texts[document])
        if now is None or want is None or now.group(2) != want.group(2):
            found.append(f"{document}: {name}")
    return found


def record(data: dict, lines: list[str], origin: str) -> list[str]:
    """Widen each named figure's range with the recorded values; returns what changed."""
    changes = []
    for number_, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key, value = item["figure"], float(item["value"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FiguresError(f"{origin}:{number_}: not a figure record ({exc})") from exc
        if key not in data["figures"]:
            raise FiguresError(f"{origin}:{number_}: unknown figure {key!r} (add it to ops/figures.json)")
        if not math.isfinite(value) or value < 0:
            raise FiguresError(f"{origin}:{number_}: {key} = {value} is not a measurement")
        entry = data["figures"][key]
        decimals = int(entry.get("decimals", 0))
        value = round(value, decimals)
        low, high = min(entry["low"], value), max(entry["high"], value)
        if entry["runs"] == 0:
            low = high = value
        entry.update(low=low, high=high, runs=entry["runs"] + 1)
        changes.append(f"{key}: {value} -> {value_range(entry)} ({entry['runs']} runs)")
    return changes


def append_record(key: str, value: float, path: Path | None = None) -> None:
    """For measuring scripts: one line into .state/figures/<file>.jsonl (never the committed file;
    OPS_FIGURES_RECORDS names another folder)."""
    path = path or RECORDS / "drills.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"figure": key, "value": round(value, 3)}) + "\n")


def record_run(
    values: dict[str, float], *, documented: bool, ok: bool = True, wanted: bool | None = None
) -> str:
    """For the benchmarks (loadtests/bench_*.py): append a run's headline figures to
    .state/figures/bench.jsonl, and say in one line (to print) whether it did.

    Recorded: a run that did not fail (`ok`: every request answered, every frame delivered) and was made
    at the sizes the docs' figures are for (`documented`), or at any size with `wanted` True (--record);
    never with `wanted` False (--no-record) or when it failed. Values that are not finite and
    non-negative (a phase that measured nothing) are left out."""
    known = load()["figures"]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise FiguresError(f"unknown figures {unknown} (add them to ops/figures.json)")
    if not ok:
        return "figures not recorded: the run failed"
    if wanted is False:
        return "figures not recorded (--no-record)"
    if wanted is None and not documented:
        return "figures not recorded: sizes differ from the documented run (--record records them)"
    path = RECORDS / BENCH_RECORDS
    kept = {key: value for key, value in values.items() if math.isfinite(value) and value >= 0}
    for key, value in kept.items():
        append_record(key, value, path)
    return (
        f"figures recorded: {len(kept)} lines in {path} "
        f"(python -m ops.figures record {path} widens ops/figures.json's ranges and the docs)"
    )


# The lab cycles' step names (lab/cycle.py `single`, lab/multi.py) and their figures. A step of the
# single cycle "<command> (in the host)" is a figure when the command is make test-infra's: its deploy
# command (`make deploy-cycle …`) or its teardown (`make down …`); any other (a quick `--deploy 'make up'`
# run) is left out.
SINGLE_IN_HOST = (("make deploy-cycle", "lab.single.deploy_s"), ("make down", "lab.single.teardown_s"))
LAB_STEPS = {
    ("single", "lab up"): "lab.single.up_s",
    ("single", "images (built here, pushed to the lab registry)"): "lab.single.images_s",
    ("single", "prerequisites (apt-get, meanwhile in the host)"): "lab.single.prerequisites_s",
    ("single", "wheels of requirements.txt (built here once, copied in)"): "lab.single.wheels_s",
    ("single", "make verify INVENTORY=… (from here)"): "lab.single.verify_s",
    ("multi", "lab up"): "lab.multi.up_s",
    ("multi", "docker layer (engines, firewall, images built once, pushed, pulled)"): "lab.multi.docker_s",
    ("multi", "site.yml (cold deploy across the hosts)"): "lab.multi.site_s",
    ("multi", "site.yml again (changed=0)"): "lab.multi.again_s",
    ("multi", "make rotate WHAT=ca (certificates re-signed, restarts)"): "lab.multi.rotate_s",
    ("multi", "make verify after the rotation"): "lab.multi.verify_rotated_s",
    ("multi", "make status (every host read, none down)"): "lab.multi.status_s",
    ("multi", "upgrade drill: release pmxup built and pushed"): "lab.multi.upgrade_release_s",
    ("multi", "make upgrade across the hosts, under load"): "lab.multi.upgrade_s",
    ("multi", "make rollback across the hosts, under load"): "lab.multi.rollback_s",
    ("multi", "drill ERP alerts: every ERP host's own alert in the admins channel, through the proxy"): (
        "lab.multi.drill_erp_alerts_s"
    ),
    # lab/drill_rocketchat.py STEP_*.
    (
        "multi",
        "drill Rocket.Chat down: stopped on the chat host → BotRocketChatDisconnected firing in Prometheus",
    ): ("lab.multi.drill_rocketchat_alert_s"),
    ("multi", "drill Rocket.Chat down: started → the employee's next answer answered by the bot"): (
        "lab.multi.drill_rocketchat_answer_s"
    ),
    ("multi", "drill Rocket.Chat down: started → BotRocketChatDisconnected in the admins group"): (
        "lab.multi.drill_rocketchat_delivered_s"
    ),
    ("multi", "drill Rocket.Chat down, whole (the dialog's first answer to the alert resolved)"): (
        "lab.multi.drill_rocketchat_whole_s"
    ),
    # lab/drill_host_faults.py STEPS, beside the host loss.
    ("multi", "drill host faults: restart loop on the bot host → ContainerRestartLoop in the admins group"): (
        "lab.multi.drill_faults_restart_s"
    ),
    (
        "multi",
        "drill host faults: disk nearly full on the db host → HostDiskNearlyFull in the admins group",
    ): ("lab.multi.drill_faults_disk_s"),
    ("multi", "drill host faults: certificate expiring on the proxy → CertificateExpiringSoon in admins"): (
        "lab.multi.drill_faults_certificate_s"
    ),
    ("multi", "drill host faults, whole (faults set to every one undone and recovered)"): (
        "lab.multi.drill_faults_whole_s"
    ),
    ("multi", "drill host loss, whole drill (request loop start to stop)"): "lab.multi.drill_whole_1m_s",
    # Since TargetDown waits 1m in inventory/lab (monitoring_alert_for); the step names the rule's wait.
    ("multi", "drill host loss, whole drill (request loop start to stop; TargetDown for 1m)"): (
        "lab.multi.drill_whole_for1m_s"
    ),
    ("multi", "lab down"): "lab.multi.down_s",
}
# The host-loss drill's steps name the host it killed (lab/drill_host_loss.py).
LAB_DRILL_STEPS = tuple(
    (re.compile(rf"^drill host loss: \S+ {pattern}$"), figure)
    for pattern, figure in (
        (r"killed → \w+ in the admins group", "lab.multi.drill_alert_s"),
        (r"killed → \w+ \(for 1m\) in the admins group", "lab.multi.drill_alert_for1m_s"),
        (r"started → serving through the proxy again", "lab.multi.drill_serving_s"),
        (r"started → resolved in the admins group", "lab.multi.drill_resolved_1m_s"),
    )
)
LAB_PASSED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) lab cycle (\w+): passed in \d+ s$")
LAB_STEP = re.compile(r"^  (?P<step>.+?)\s+(?P<seconds>\d+) s(?:  \(load (?P<load>[\d.]+)\))?$")


def lab_records(text: str, after: str = "") -> tuple[list[str], str]:
    """Figure records (JSON lines) of the passed cycles in lab/cycle.py's log TEXT that were logged
    after the time AFTER, and the time of the last one. A failed cycle logs no step times; a step this
    table does not know (a renamed one) is left out, not guessed. lab.multi logs the load average beside
    each step: the highest of a run is its lab.multi.load_average."""
    entries: list[tuple[str, list[re.Match[str]]]] = []
    last, current = after, None
    for line in text.splitlines():
        passed = LAB_PASSED.match(line)
        step = LAB_STEP.match(line)
        if passed and passed.group(1) > after:
            current = (passed.group(2), [])
            entries.append(current)
            last = max(last, passed.group(1))
        elif step and current is not None:
            current[1].append(step)
        else:
            current = None
    records = []
    for cycle, steps in entries:
        loads = []
        for step in steps:
            name = step["step"]
            key = LAB_STEPS.get((cycle, name))
            if cycle == "single" and name.endswith(" (in the host)"):
                key = next((figure for command, figure in SINGLE_IN_HOST if name.startswith(command)), None)
            elif cycle == "multi" and name.startswith("make verify INVENTORY="):
                key = "lab.multi.verify_s"
            elif cycle == "multi" and key is None:
                key = next((figure for pattern, figure in LAB_DRILL_STEPS if pattern.match(name)), None)
            if key:
                records.append(json.dumps({"figure": key, "value": float(step["seconds"])}))
            if step["load"] is not None:
                loads.append(float(step["load"]))
        if loads and cycle == "multi":
            records.append(json.dumps({"figure": "lab.multi.load_average", "value": max(loads)}))
    return records, last


def record_delivery(data: dict, reports: list[Path], drop_seeds: bool = False) -> None:
    """Add the reports' runs (default: every staging-run report in DELIVERY_STATE) to
    data["delivery_runs"], each once (by its start); DROP_SEEDS leaves out the hand-copied runs."""
    if not reports:
        reports = sorted(DELIVERY_STATE.glob("staging-run-*.json"))
        if not reports and not drop_seeds:
            raise FiguresError(f"no staging-run report in {DELIVERY_STATE} (make test-delivery writes one)")
    runs = data.setdefault("delivery_runs", [])
    if drop_seeds:
        runs[:] = [run for run in runs if not run.get("seed")]
        print("hand-copied (seed) runs left out")
    recorded = {run["started"] for run in runs if not run.get("seed")}
    new, skipped = delivery_reports(reports, recorded)
    for line in skipped:
        print(line)
    for run in new:
        runs.append(run)
        verdict = "passed" if run["passed"] else f"failed at {run.get('stopped_at', '?')}"
        print(f"{run['source']}: {verdict}, {len(run['stages'])} stages, {run['seconds']:.0f} s")
    runs.sort(key=run_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.figures", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help="render every generated block of the docs")
    sub.add_parser("check", help="exit 1 when a generated block differs from its source")
    rec = sub.add_parser("record", help="widen ops/figures.json's ranges with recorded values, then write")
    rec.add_argument("files", nargs="+", type=Path)
    lab = sub.add_parser(
        "record-lab",
        help="widen the lab cycle figures with the passed cycles lab/cycle.py logged since the last time",
    )
    lab.add_argument("log", nargs="?", type=Path, default=LAB_LOG, help=f"default {LAB_LOG}")
    delivery = sub.add_parser(
        "record-delivery",
        help="add the staging runs' reports (make test-delivery) not yet recorded to docs/delivery.md",
    )
    delivery.add_argument(
        "reports", nargs="*", type=Path, help=f"staging-run-*.json (default: those in {DELIVERY_STATE})"
    )
    delivery.add_argument(
        "--drop-seeds",
        action="store_true",
        help="leave out the runs copied by hand from the doc before reports were recorded",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "record":
            data = load(FIGURES)
            for path in args.files:
                lines = path.read_text(encoding="utf-8").splitlines()
                for change in record(data, lines, str(path)):
                    print(change)
            FIGURES.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            for path in args.files:  # counted once: set aside as FILE.recorded
                done = path.with_name(path.name + ".recorded")
                with done.open("a", encoding="utf-8") as out:
                    out.write(path.read_text(encoding="utf-8"))
                path.unlink()
        if args.command == "record-lab":
            data = load(FIGURES)
            after = data.get("lab_log_recorded_until", "")
            try:
                text = args.log.read_text(encoding="utf-8")
            except OSError as exc:
                raise FiguresError(f"{args.log}: {exc} (no lab cycle has logged here)") from exc
            lines, last = lab_records(text, after)
            for change in record(data, lines, str(args.log)):
                print(change)
            if not lines:
                print(f"no passed lab cycle logged in {args.log} after {after or 'the start'}")
            data["lab_log_recorded_until"] = last  # the log is the lab's: counted once by its time
            FIGURES.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if args.command == "record-delivery":
            data = load(FIGURES)
            record_delivery(data, args.reports, args.drop_seeds)
            FIGURES.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if args.command in ("write", "record", "record-lab", "record-delivery"):
            for document, text in generated(ROOT).items():
                (ROOT / document).write_text(text, encoding="utf-8")
            return 0
        problems = stale(ROOT)
    except FiguresError as exc:
        print(f"ops.figures: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"stale generated block: {problem} (run python -m ops.figures write)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
