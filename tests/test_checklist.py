"""docs/checklist.md stays true to the seed checklist: every item present, a valid status, real paths."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seed" / "integration-checklist.ru.md"
CHECKLIST = ROOT / "docs" / "checklist.md"
STATUSES = {"done", "partial", "not yet"}

pytestmark = pytest.mark.unit


def seed_items() -> list[str]:
    if not SEED.exists():
        pytest.skip(f"seed checklist not found at {SEED}")
    items = []
    for line in SEED.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*- \[[ xX]\] (.+?):?\s*$", line)
        if match:
            items.append(match.group(1))
    return items


def checklist_rows() -> dict[str, list[str]]:
    rows = {}
    for line in CHECKLIST.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and cells[2] not in {"Status", "---"}:
            rows[cells[0]] = cells
    return rows


def test_every_seed_item_is_tracked():
    items = seed_items()
    assert len(items) >= 60, "the seed checklist parser found too few items"
    missing = [item for item in items if item not in checklist_rows()]
    assert not missing, f"items of the seed missing from docs/checklist.md: {missing}"


def test_statuses_are_known_and_done_items_name_code_and_test():
    for item, (_, _, status, code, test) in checklist_rows().items():
        assert status in STATUSES, f"{item!r}: unknown status {status!r}"
        if status == "done":
            assert code, f"{item!r} is done but names no code"
            assert test, f"{item!r} is done but names no test"


def test_named_paths_exist():
    """Paths are written in backticks; commands (with spaces) and URL paths (leading /) are not paths."""
    for item, (_, _, _, code, test) in checklist_rows().items():
        for name in re.findall(r"`([^`]+)`", f"{code} {test}"):
            if " " in name or name.startswith("/"):
                continue
            path = name.split("::")[0]
            assert (ROOT / path).exists(), f"{item!r} names {path}, which does not exist"


def test_done_items_name_paths():
    for item, (_, _, status, code, test) in checklist_rows().items():
        if status == "done":
            assert re.search(r"`[^` ]+`", code), f"{item!r}: name the code as a `path`"
            assert re.search(r"`[^` ]+`", test), f"{item!r}: name the test as a `path`"
