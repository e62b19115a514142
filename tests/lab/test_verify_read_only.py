"""`make verify` is read-only (README, docs/operations.md): safe against production and against a stack a
user deployed. It runs the deployment tests marked `infra and not drill`, so such a test that changes
the stack must carry the `drill` marker (`make drill`, which refuses production). Read from the
tests' source: a test that runs a playbook against the stack or stops, kills, pauses, restarts or removes
a container is a drill."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "tests" / "infra"
# The second-run checks: skipped unless make test-infra sets PHOTOMATRIX_IDEMPOTENCE=1 after its own deploy.
GATED = {"test_layers.py"}


def marks(decorators: list[ast.expr]) -> set[str]:
    found = set()
    for node in decorators:
        target = node.func if isinstance(node, ast.Call) else node
        text = ast.unparse(target)
        if text.startswith("pytest.mark."):
            found.add(text.removeprefix("pytest.mark."))
    return found


def module_marks(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return {ast.unparse(v).removeprefix("pytest.mark.") for v in values}
    return set()


def docker_verb(source: str) -> bool:
    """The test itself runs `docker kill|stop|pause|restart|rm …` (an argv list naming docker first)."""
    return bool(re.search(r"[\"']docker[\"'],\s*[\"'](kill|stop|pause|unpause|restart|rm)[\"']", source))


def read_write_tests(directory: Path = INFRA) -> list[str]:
    """Deployment tests `make verify` would run that change the stack: file::test."""
    offenders = []
    for path in sorted(directory.glob("test_*.py")):
        if path.name.startswith("test_drill_") or path.name in GATED:
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        in_module = module_marks(tree)
        for node in ast.walk(tree):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if not is_function or not node.name.startswith("test_"):
                continue
            selected = in_module | marks(node.decorator_list)
            if "infra" not in selected or "drill" in selected:
                continue  # not one of make verify's (`-m 'infra and not drill'`)
            body = ast.get_source_segment(source, node) or ""
            if re.search(r"run_\w*_play\(|ansible-playbook", body) or docker_verb(body):
                offenders.append(f"{path.name}::{node.name}")
    return offenders


def test_no_test_make_verify_runs_changes_the_stack() -> None:
    assert read_write_tests() == [], "mark these @pytest.mark.drill: make verify is read-only"


def test_the_reader_sees_a_playbook_run_and_a_docker_kill(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "@pytest.mark.infra\ndef test_plays(stack):\n    run_proxy_play(stack)\n"
        "@pytest.mark.infra\nasync def test_kills(stack):\n    run(['docker', 'kill', 'bot'])\n"
        "@pytest.mark.infra\n@pytest.mark.drill\ndef test_marked(stack):\n    run_proxy_play(stack)\n"
        "@pytest.mark.infra\ndef test_reads(stack):\n    run(['docker', 'inspect', 'bot'])\n"
        "@pytest.mark.integration\ndef test_elsewhere(tmp_path):\n    run_proxy_play(None)\n",
        encoding="utf-8",
    )
    assert read_write_tests(tmp_path) == ["test_x.py::test_plays", "test_x.py::test_kills"]
    (tmp_path / "test_y.py").write_text(
        "import pytest\npytestmark = pytest.mark.infra\ndef test_swaps(stack):\n    run_proxy_play(stack)\n",
        encoding="utf-8",
    )
    assert read_write_tests(tmp_path)[-1] == "test_y.py::test_swaps"
