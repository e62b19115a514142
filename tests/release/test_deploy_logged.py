"""release/deploy.py's `run_logged`: a playbook's output goes to its log and to a reader line by line as it
comes; a run past its timeout is killed and said so; a reader that fails leaves nothing running."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from release import deploy

pytestmark = pytest.mark.unit

PY = sys.executable


def test_each_line_reaches_the_log_and_the_reader_as_it_comes(tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    script = "import time\nprint('PLAY [one]', flush=True)\ntime.sleep(1)\nprint('PLAY [two]', flush=True)\n"
    code = deploy.run_logged(
        [PY, "-c", script], {}, tmp_path / "run.log", 30, lambda line: seen.append((time.monotonic(), line))
    )
    assert code == 0
    assert [line for _, line in seen] == ["PLAY [one]\n", "PLAY [two]\n"]
    assert seen[1][0] - seen[0][0] >= 0.9  # read as they came, not at the end
    assert (tmp_path / "run.log").read_text() == "PLAY [one]\nPLAY [two]\n"


def test_a_run_past_its_timeout_is_killed_and_returns_none(tmp_path: Path) -> None:
    started = time.monotonic()
    code = deploy.run_logged([PY, "-c", "import time; print('started', flush=True); time.sleep(60)"], {},
                          tmp_path / "run.log", 1)  # fmt: skip
    assert code is None
    assert time.monotonic() - started < 30
    assert (tmp_path / "run.log").read_text() == "started\n"


def test_a_failing_reader_stops_the_run(tmp_path: Path) -> None:
    def reader(line: str) -> None:
        raise RuntimeError("the reader broke")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the reader broke"):
        deploy.run_logged([PY, "-c", "import time; print('x', flush=True); time.sleep(60)"], {},
                       tmp_path / "run.log", 120, reader)  # fmt: skip
    assert time.monotonic() - started < 30
