"""The documentation's relative links lead somewhere: every linked file and anchor exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
pytestmark = pytest.mark.unit


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def anchors(path: Path) -> set[str]:
    """GitHub-style heading anchors of a Markdown file."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("<"):
            continue  # external URLs and placeholders
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)}: broken links {broken}"


# --------------------------------------------------------------------------------------------------
# Commands, not only links: every shell command in a runbook's code block is run by a test (or by CI's
# `make test`), named below, or marked `# illustrative` in the document itself.

RUNBOOKS = [
    "README.md",
    "docs/bot-admin-guide.md",
    "docs/erp.md",
    "docs/install.md",
    "docs/load-testing.md",
    "docs/operations.md",
    "docs/quickref-devops.md",
    "docs/quickref-qa.md",
    "docs/rocketchat-configuration.md",
    "docs/simulator.md",
    "docs/support.md",
    "docs/test-plan.md",
    "docs/training/admin-course.md",
    "docs/training/employee-quick-start.md",
]

FIRST_ACCESS = "tests/infra/test_first_access.py"
WITH_BOT = "tests/rcchat/test_with_bot.py"
RUNBOOK_INFRA = "tests/infra/test_runbooks.py"
ROTATE = "tests/infra/test_rotate.py"  # in `make drill`, which CI's make test-infra runs
LAYERS = "tests/infra/test_layers.py"  # in make test-infra (CI) and make deploy-cycle (lab host)
BACKUP = "tests/infra/test_backup.py"
AS_WRITTEN = "tests/test_docs.py"  # the tests below run these from the document, in a scratch directory
# make mongodb-fcv against members whose docker answers as a replica set would (MongoDB cannot run here).
MONGODB_UPGRADE = "tests/roles/test_mongodb_upgrade.py"

# (command regex, evidence). Evidence kinds:
#   "tests/x.py::test_y"  that test runs the command (or, for `docker logs … | grep`, matches the pattern
#                         against the same process's log);
#   "make:<target>"       CI's `make test` reaches that target (test → lint, test-infra → up/verify/down,
#                         test-delivery);
#   "ci:make test"        the CI entry point itself (.ci/run);
#   "apt:<pkg> …"         CI installs these packages with apt-get (.ci/apt-packages.txt);
#   "pytest"              a pytest selection of paths and markers that exist; CI's full run includes it.
# A tuple of evidences means any one that exists (a suite being renamed).
REGISTRY: list[tuple[str, object]] = [
    (
        r"apt-get install -y --no-install-recommends make git python3-venv curl",
        "apt:make git python3-venv curl",
    ),
    (r"make up", "make:up"),
    (r"make verify", "make:verify"),
    (r"make down( PURGE=true)?", "make:down"),
    (r"make setup", "make:setup"),
    (r"make lint", "make:lint"),
    (r"make test", "ci:make test"),
    (r"make test-infra", "make:test-infra"),
    (r"make test-fast", "tests/test_docs.py::test_make_test_fast_runs"),
    (r"make user NAME=[\w.-]+", f"{FIRST_ACCESS}::test_make_user_then_the_employee_asks_the_bot_for_help"),
    (r"make chat NAME=[\w.-]+", f"{FIRST_ACCESS}::test_make_chat_opens_a_dm_with_the_bot"),
    (r"make rotate WHAT=erp-key", f"{ROTATE}::test_rotate_erp_key"),
    (r"make rotate WHAT=rocketchat-token", f"{ROTATE}::test_rotate_rocketchat_token"),
    (r"make rotate WHAT=ca", f"{ROTATE}::test_rotate_ca"),
    (r"make rotate WHAT=alerts-token", f"{ROTATE}::test_rotate_alerts_token"),
    (r"make rotate WHAT=erp-key,rocketchat-token,alerts-token", f"{ROTATE}::test_rotate_erp_key"),
    (r"make upgrade", "tests/infra/test_drill_upgrade.py::test_upgrade_then_rollback_under_load"),
    (r"make rollback", "tests/infra/test_drill_upgrade.py::test_upgrade_then_rollback_under_load"),
    (
        r"make mongodb-fcv",
        f"{MONGODB_UPGRADE}::test_make_mongodb_fcv_without_confirmation_changes_nothing_and_says_what_it_would_do",
    ),
    (
        r"make mongodb-fcv FCV=[0-9.]+ CONFIRM=true",
        f"{MONGODB_UPGRADE}::test_make_mongodb_fcv_confirmed_raises_it_on_the_primary_alone",
    ),
    (
        r"make status",
        "tests/ops/test_status.py::test_status_against_its_own_container_and_tls_server_changes_nothing",
    ),
    (r"make drill", "make:drill"),
    (r"make drill DRILL_SKIP=upgrade", "tests/lab/test_verify_playbook.py"),
    # lab.multi's step drill runs it (its argv checked there; CI's make test runs make test-multi).
    (
        r"make drill INVENTORY=inventory/lab",
        "tests/lab/test_multi_unit.py::test_from_drill_runs_the_drill_alone_on_the_kept_lab",
    ),
    (
        r"make load",
        (
            "tests/loadtests/test_load_run.py::test_smoke_profile_against_the_local_stack",
            "tests/loadtests/test_locust.py",
        ),
    ),
    (
        r"python -m erp (migrate|seed-positions|keys create .*)",
        f"{AS_WRITTEN}::test_the_erp_manual_setup_runs_as_written",
    ),
    (
        r"openssl rand -base64 48 > /etc/erp/secret .*",
        f"{AS_WRITTEN}::test_the_erp_manual_setup_runs_as_written",
    ),
    (
        r"ERP_SECRET_KEY_FILE=\S+ python -m erp serve .*",
        f"{AS_WRITTEN}::test_the_erp_manual_setup_runs_as_written",
    ),
    (r"PORT=3000 .* python -m rocketchat_sim", f"{AS_WRITTEN}::test_the_simulator_starts_as_written"),
    (
        r"make capacity",
        "tests/loadtests/test_load_run.py::test_make_capacity_reports_the_figure_and_the_saturated_component",
    ),
    (
        r"python loadtests/bench_bot\.py",
        "tests/bot/test_bench_bot.py::test_bench_bot_prints_its_figures_with_a_seeded_store",
    ),
    (r"(\.venv/bin/)?pytest( -q)?( tests/\S+| -m \w+)+( -q)?", "pytest"),
    (r"docker ps --filter name=photomatrix- .*", f"{RUNBOOK_INFRA}::test_verify_commands_run_as_written"),
    (
        r"curl -sS --cacert \S+ https://localhost/api/info",
        f"{RUNBOOK_INFRA}::test_verify_commands_run_as_written",
    ),
    (
        r"docker exec photomatrix-erp-api python -m erp alerts-check",
        "tests/infra/test_hosts.py::test_each_erp_replica_reaches_its_alerts_webhook",
    ),
    (
        r"docker exec photomatrix-chatbot python -m bot\.ready( .*)?",
        f"{RUNBOOK_INFRA}::test_verify_commands_run_as_written",
    ),
    (r"\.venv/bin/python -m rcchat .*", f"{RUNBOOK_INFRA}::test_terminal_client_commands_run_as_written"),
    (
        r"photomatrix-backup (create|list)",
        f"{BACKUP}::test_backup_then_restore_brings_the_backed_up_data_back",
    ),
    (
        r"photomatrix-backup (verify|restore) /var/backups/photomatrix/photomatrix-\w+\.pmbackup",
        f"{BACKUP}::test_backup_then_restore_brings_the_backed_up_data_back",
    ),
    (r"photomatrix-backup prune", f"{BACKUP}::test_prune_keeps_the_newest_of_each_day_and_week"),
    (
        r"ansible-playbook playbooks/site\.yml --check --diff",
        f"{LAYERS}::test_check_diff_on_the_deployed_stack_reports_nothing",
    ),
    (
        r"ansible-playbook playbooks/site\.yml --tags rocketchat",
        f"{LAYERS}::test_tags_rocketchat_runs_without_the_images_play",
    ),
    (
        r"ansible-playbook playbooks/(docker|mongodb|rocketchat|proxy|rocketchat_config|erp|bot|backup"
        r"|monitoring)\.yml",
        f"{LAYERS}::test_each_layer_playbook_runs_alone",  # the layers it parametrizes
    ),
    (
        r"docker logs photomatrix-chatbot 2>&1 \| grep '\"(outcome|user)\": .*'",
        "tests/test_support_runbook.py::test_the_pending_approval_search_finds_the_request",
    ),
    (
        r"docker logs photomatrix-erp-api 2>&1 \| grep '\"action\": \"auth\"'",
        "tests/test_support_runbook.py::test_the_auth_search_finds_a_refused_key",
    ),
]


def runbook_commands() -> list:
    from plugins.docs import shell_commands

    return [command for name in RUNBOOKS for command in shell_commands(ROOT / name)]


def evidence_problem(evidence: object) -> str | None:
    """None when the evidence exists; else what is missing."""
    import ast

    if isinstance(evidence, tuple):
        problems = [evidence_problem(e) for e in evidence]
        return None if None in problems else "; ".join(p for p in problems if p)
    assert isinstance(evidence, str)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    if evidence.startswith("make:"):
        return (
            None if evidence[5:] in ci_make_targets(makefile) else f"CI's make test never reaches {evidence}"
        )
    if evidence == "ci:make test":
        return (
            None
            if "make test" in (ROOT / ".ci/run").read_text(encoding="utf-8")
            else ".ci/run runs no make test"
        )
    if evidence.startswith("apt:"):
        listed = set((ROOT / ".ci/apt-packages.txt").read_text(encoding="utf-8").split())
        missing = set(evidence[4:].split()) - listed
        return f".ci/apt-packages.txt lacks {sorted(missing)}" if missing else None
    if evidence == "pytest":
        return None
    path, _, name = evidence.partition("::")
    if not (ROOT / path).is_file():
        return f"{path} does not exist"
    if name:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        if name not in names:
            return f"{path} has no {name}"
    return None


def ci_make_targets(makefile: str) -> set[str]:
    """Targets `make test` runs, transitively: prerequisites, `$(MAKE) x` calls, the lab cycle's commands."""
    rules: dict[str, tuple[list[str], str]] = {}
    for match in re.finditer(r"^([a-z][a-z-]*):(?!=)([^\n]*)\n((?:\t[^\n]*\n?)*)", makefile, re.M):
        prerequisites = [p for p in match.group(2).split("##")[0].split() if re.fullmatch(r"[a-z][a-z-]*", p)]
        rules[match.group(1)] = (prerequisites, match.group(3))
    reached, todo = set(), ["test"]
    while todo:
        target = todo.pop()
        if target in reached or target not in rules:
            continue
        reached.add(target)
        prerequisites, recipe = rules[target]
        # `$(MAKE) x`, and what python -m lab.cycle runs in its lab host (`--deploy 'make x …'`).
        called = re.findall(r"(?:\$\(MAKE\)|--(?:deploy|teardown) 'make) ([a-z][a-z-]*)", recipe)
        todo += prerequisites + called
    return reached


def pytest_selection_problem(command: str) -> str | None:
    markers = set(re.findall(r'^  "(\w+):', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M))
    for path in re.findall(r"(tests/\S+)", command):
        if not (ROOT / path).exists():
            return f"{path} does not exist"
    for marker in re.findall(r"-m (\w+)", command):
        if marker not in markers:
            return f"no pytest marker {marker}"
    return None


def test_every_runbook_command_is_tested_or_marked_illustrative() -> None:
    untested, broken = [], []
    for command in runbook_commands():
        if command.illustrative:
            continue
        evidence = [ev for pattern, ev in REGISTRY if re.fullmatch(pattern, command.text)]
        where = f"{command.document}:{command.line}: {command.text}"
        if not evidence:
            untested.append(where)
            continue
        problem = evidence_problem(evidence[0])
        if problem is None and evidence[0] == "pytest":
            problem = pytest_selection_problem(command.text)
        if problem:
            broken.append(f"{where} -> {problem}")
    assert not untested, "commands no test runs (add to REGISTRY or mark # illustrative):\n" + "\n".join(
        untested
    )
    assert not broken, "registered evidence missing:\n" + "\n".join(broken)


def test_every_registry_entry_is_used() -> None:
    commands = [c.text for c in runbook_commands() if not c.illustrative]
    unused = [pattern for pattern, _ in REGISTRY if not any(re.fullmatch(pattern, c) for c in commands)]
    assert not unused, f"REGISTRY entries no document uses: {unused}"


def test_the_command_reader_understands_comments_quotes_and_markers(tmp_path: Path) -> None:
    from plugins.docs import shell_commands

    doc = tmp_path / "sample.md"
    doc.write_text(
        "```bash\n"
        "sudo make user NAME=x   # a comment with `make`\n"
        'grep \'"a": "#b"\' file # quoted # is code\n'
        "long \\\n  continued\n"
        "rm -rf /   # illustrative\n"
        "```\n\n```bash\n# illustrative: a whole block\nmake everything\n```\n",
        encoding="utf-8",
    )
    found = [(c.text, c.illustrative) for c in shell_commands(doc)]
    assert found == [
        ("make user NAME=x", False),
        ('grep \'"a": "#b"\' file', False),
        ("long    continued", False),
        ("rm -rf /", True),
        ("make everything", True),
    ]


@pytest.mark.integration
def test_make_test_fast_runs() -> None:
    """`make test-fast` as the QA quick reference gives it (collection only: CI runs the tests themselves)."""
    import subprocess

    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "test-fast",
            "PYTEST_ARGS=--collect-only -q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tests/test_docs.py::test_every_runbook_command_is_tested_or_marked_illustrative" in done.stdout


def test_make_down_removes_the_backup_cron_entry_even_without_purge() -> None:
    import yaml

    (play,) = yaml.safe_load((ROOT / "playbooks/teardown.yml").read_text(encoding="utf-8"))
    tasks = [
        t
        for t in play["tasks"]
        if (t.get("ansible.builtin.file") or {}).get("path") == "/etc/cron.d/photomatrix-backup"
    ]
    assert len(tasks) == 1
    assert tasks[0]["ansible.builtin.file"]["state"] == "absent"
    assert "when" not in tasks[0]


def test_the_host_changes_table_names_what_make_down_removes() -> None:
    """Every path and volume teardown.yml removes is in the quick reference's table, in the right column."""
    import yaml

    (play,) = yaml.safe_load((ROOT / "playbooks/teardown.yml").read_text(encoding="utf-8"))
    local = yaml.safe_load((ROOT / "inventory/local/group_vars/all.yml").read_text(encoding="utf-8"))
    table = (ROOT / "docs/quickref-devops.md").read_text(encoding="utf-8").split("## What `make up`")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]

    def row_of(name: str) -> list[str]:
        found = [[c.strip() for c in r.strip("|").split("|")] for r in rows if name in r.split("|")[1]]
        assert found, f"the host changes table does not name {name}"
        return found[0]

    for task in play["tasks"]:
        module = task.get("ansible.builtin.file") or {}
        if module.get("state") != "absent":
            continue
        paths = task.get("loop") or [module["path"]]
        for path in paths:
            path = path.replace("{{ photomatrix_root }}", local["photomatrix_root"])
            if "{{" in path:
                continue  # the bootstrap secrets live under photomatrix_root locally
            _, down, purge = row_of(path)
            assert purge.startswith("removed"), path
            assert down.startswith("removed" if "when" not in task else "kept"), path
    volumes = play["vars"]["teardown_volumes"]
    assert all(v.startswith("photomatrix_") and v.endswith("_data") for v in volumes)
    assert row_of("photomatrix_*_data")[1:] == ["kept", "removed"]
    assert row_of("photomatrix-*")[1:] == ["removed", "removed"]


# --------------------------------------------------------------------------------------------------
# Numbers from the code, not hand copies: the settings tables' defaults are the settings classes'
# defaults, and the alert figures the training course quotes are the rules' and the ERP's.

SETTINGS_TABLES = [
    ("docs/erp.md", "erp.settings", "ERP_"),
    ("docs/bot-admin-guide.md", "bot.settings", "BOT_"),
]
ROW = re.compile(r"^\| `([A-Z_]+)`(?: / `([A-Z_]+)`)? \| `([^`|]+)`(?: / `([^`|]+)`)? \|", re.M)


def documented_defaults(document: str, prefix: str) -> dict[str, str]:
    """{ENV_NAME: default} from rows like | `ERP_X` / `_BURST` | `20` / `60` | …; only backticked defaults."""
    found = {}
    for first, second, value, second_value in ROW.findall((ROOT / document).read_text(encoding="utf-8")):
        if not first.startswith(prefix):
            continue
        found[first] = value
        if second and second_value:
            # `_BURST` after `ERP_RATE_LIMIT_KEY_PER_SECOND` is ERP_RATE_LIMIT_KEY_BURST
            name = second if second.startswith(prefix) else first.rsplit("_", 2)[0] + second
            found[name] = second_value
    return found


def same_value(documented: str, actual: object) -> bool:
    if isinstance(actual, bool):
        return documented.lower() == str(actual).lower()
    if isinstance(actual, int | float):
        try:
            return float(documented) == float(actual)
        except ValueError:
            return False
    if isinstance(actual, list | tuple | set | frozenset):
        return documented == ",".join(map(str, actual)) or documented == " ".join(map(str, actual))
    return documented == str(actual)


@pytest.mark.parametrize(("document", "module", "prefix"), SETTINGS_TABLES, ids=lambda v: str(v))
def test_documented_setting_defaults_are_the_code_defaults(document: str, module: str, prefix: str) -> None:
    import importlib

    settings = importlib.import_module(module)
    classes = [c for c in vars(settings).values() if isinstance(c, type) and hasattr(c, "model_fields")]
    fields = {}
    for cls in classes:
        config_prefix = (getattr(cls, "model_config", {}) or {}).get("env_prefix", "")
        if str(config_prefix).upper() == prefix:
            fields.update({prefix + name.upper(): field for name, field in cls.model_fields.items()})
    assert fields, f"no settings class with env_prefix {prefix} in {module}"
    documented = documented_defaults(document, prefix)
    assert len(documented) >= 10, documented  # the table is still there and still parsed
    wrong, compared = [], 0
    for name, value in documented.items():
        field = fields.get(name) or fields.get(name.removesuffix("_FILE"))
        if field is None or field.is_required() or field.default is None:
            continue  # documented elsewhere as derived, or a file variant
        compared += 1
        if not same_value(value, field.default):
            wrong.append(f"{name}: documented {value!r}, code {field.default!r}")
    assert compared >= 10, f"only {compared} defaults compared in {document}"
    assert not wrong, f"{document} differs from {module}:\n" + "\n".join(wrong)


def test_the_auth_failure_drill_quotes_the_rule_and_the_erp_threshold() -> None:
    """The training course's ErpAuthFailureBurst figures (issue 16: 'ten wrong keys' was false)."""
    import yaml

    from erp.settings import Settings

    course = " ".join((ROOT / "docs/training/admin-course.md").read_text(encoding="utf-8").split())
    rules = yaml.safe_load((ROOT / "monitoring/rules/erp.yml").read_text(encoding="utf-8"))
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ErpAuthFailureBurst"]
    match = re.fullmatch(r"sum\(increase\(erp_auth_failures_total\[(\d+)m\]\)\) > (\d+)", rule["expr"])
    assert match, rule["expr"]
    minutes, above = match.groups()
    assert f"more than {above} failed authentications within {minutes} minutes" in course
    assert f"after its {rule['for'].removesuffix('m')}-minute `for:`" in course
    fields = Settings.model_fields
    threshold = fields["alert_auth_failures_threshold"].default
    window = fields["alert_window_seconds"].default
    assert f"{threshold} within {window} s (`ERP_ALERT_AUTH_FAILURES_THRESHOLD`)" in course


def test_the_admin_email_verified_default_is_the_roles() -> None:
    """ADMIN_EMAIL_VERIFIED: the docs say what the rocketchat role sets (issue 16: they differed)."""
    import yaml

    defaults = yaml.safe_load((ROOT / "roles/rocketchat/defaults/main.yml").read_text(encoding="utf-8"))
    value = str(defaults["rocketchat_admin_email_verified"]).lower()
    text = " ".join((ROOT / "docs/rocketchat-configuration.md").read_text(encoding="utf-8").split())
    assert f"`rocketchat_admin_email_verified` defaults to `{value}`" in text
    env = (ROOT / "roles/rocketchat/tasks/env.yml").read_text(encoding="utf-8")
    assert "'ADMIN_EMAIL_VERIFIED': rocketchat_admin_email_verified" in env


def test_the_manual_erp_setup_gives_the_bot_the_scopes_the_role_gives_it() -> None:
    """docs/erp.md's manual bot key has the role's scopes (issue 16: only `bot`, admin commands got 403)."""
    import yaml

    text = (ROOT / "docs/erp.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"^python -m erp keys create --name bot (.*?)(?:#|$)", text, re.M)
    documented = set(re.findall(r"--scope (\w+)", command))
    defaults = yaml.safe_load((ROOT / "roles/erp_api/defaults/main.yml").read_text(encoding="utf-8"))
    assert documented == set(defaults["erp_api_bot_key_scopes"])
    assert "admin" in documented, "the bot's admin commands (approve, block, audit, report) need it"


def test_the_container_table_lists_every_container_the_roles_run() -> None:
    """docs/install.md's "What gets deployed" names exactly the containers the roles' defaults name."""
    names = set()
    for defaults in sorted((ROOT / "roles").glob("*/defaults/main.yml")):
        names |= set(re.findall(r"^\w+_container_name: (photomatrix-[\w-]+)$", defaults.read_text(), re.M))
    assert len(names) >= 5, names
    table = (
        (ROOT / "docs/install.md")
        .read_text(encoding="utf-8")
        .split("## What gets deployed")[1]
        .split("\n\n")[1]
    )
    documented = set(re.findall(r"^\| `(photomatrix-[\w-]+)` \|", table, re.M))
    assert documented == names, f"missing {sorted(names - documented)}, stale {sorted(documented - names)}"


def test_generated_blocks_match_their_sources() -> None:
    """docs/checklist.md's performance figures and open items, docs/operations.md's drill figures,
    docs/lab.md's lab cycle figures: as `python -m ops.figures write` renders them from ops/figures.json
    (widened by the benchmarks', drills' and lab cycles' records) and the checklist's rows."""
    from ops import figures

    assert figures.stale() == [], "run python -m ops.figures write"


# --------------------------------------------------------------------------------------------------
# Runbook commands run as written, against processes the test starts, in a scratch directory. The only
# substitutions: a file the document puts under /etc goes into the scratch directory, a fixed port or
# 0.0.0.0 becomes a free loopback port, and a password shown as `...` becomes a random one.


def documented_block(document: str, first: str) -> list[str]:
    from plugins.docs import shell_commands

    commands = [c.text for c in shell_commands(ROOT / document) if not c.illustrative]
    start = [i for i, text in enumerate(commands) if text.startswith(first)]
    assert start, f"{document} has no command starting with {first!r}"
    return commands[start[0] :]


def scratch_env() -> dict[str, str]:
    """As an administrator's shell in the checkout: `python` is the project's, packages from the tree."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERP_", "BOT_", "SIM_", "ADMIN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def wait_for(url: str, process, timeout: float = 60) -> object:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.stdout.read() if process.stdout else "exited"
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"{url} did not answer within {timeout} s"
            time.sleep(0.2)


def stop(process) -> None:
    """The shell and the server it started (their own session)."""
    import os
    import signal
    import subprocess

    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.mark.integration
def test_the_erp_manual_setup_runs_as_written(tmp_path: Path) -> None:
    """docs/erp.md "Running it": migrate, seed the positions, create the bot's key, make the secret file
    and serve, each command as the document gives it, from a fresh directory (the default SQLite file)."""
    import subprocess

    import httpx
    from plugins.processes import free_port

    migrate, seed, create, secret, serve = documented_block("docs/erp.md", "python -m erp migrate")[:5]
    assert serve.startswith("ERP_SECRET_KEY_FILE=")
    env = scratch_env()

    def bash(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    for command in (migrate, seed):
        done = bash(command)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    created = bash(create)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("erp_"), created.stdout  # the key alone on stdout, once
    made = bash(secret.replace("/etc/erp/secret", str(tmp_path / "secret")))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    listed = bash("python -m erp keys list")
    assert "bot" in listed.stdout
    assert "admin" in listed.stdout
    assert "10.0.0.0/8" in listed.stdout

    port = free_port()
    command = serve.replace("/etc/erp/secret", str(tmp_path / "secret"))
    command = command.replace("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}")
    assert command != serve
    server = subprocess.Popen(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ready = wait_for(f"http://127.0.0.1:{port}/readyz", server)
        assert ready.status_code == 200, ready.text
        # the key works only from the network it allows: loopback is refused
        refused = httpx.get(
            f"http://127.0.0.1:{port}/api/bot/v1/positions", headers={"X-API-Key": key}, timeout=5
        )
        assert refused.status_code == 403, refused.text
        # (the same scopes without --allow are served from loopback: it was the network)
        other = bash(create.replace("--name bot", "--name bot-loopback").split(" --allow")[0]).stdout.strip()
        served = httpx.get(
            f"http://127.0.0.1:{port}/api/bot/v1/positions", headers={"X-API-Key": other}, timeout=5
        )
        assert served.status_code == 200, served.text
    finally:
        stop(server)


@pytest.mark.integration
def test_the_simulator_starts_as_written(tmp_path: Path) -> None:
    """docs/simulator.md "Running it": the simulator with its first admin, who can log in."""
    import secrets
    import subprocess

    import httpx
    from plugins.processes import free_port

    (command,) = documented_block("docs/simulator.md", "PORT=3000 ")[:1]
    port, password = free_port(), secrets.token_urlsafe(12)
    run = command.replace("PORT=3000", f"PORT={port}").replace("ADMIN_PASS=...", f"ADMIN_PASS={password}")
    assert run.count(str(port)) == 1
    assert password in run
    sim = subprocess.Popen(
        ["bash", "-c", run],
        cwd=tmp_path,
        env=scratch_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        info = wait_for(f"http://127.0.0.1:{port}/api/info", sim)
        assert info.status_code == 200, info.text
        login = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/login", json={"user": "admin", "password": password}, timeout=10
        )
        assert login.status_code == 200, login.text
        assert login.json()["data"]["me"]["emails"][0]["address"] == "admin@example.com"
    finally:
        stop(sim)
