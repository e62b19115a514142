"""monitoring_alert_for: an environment's wait before an alert fires, applied to the repository's rule files
as roles/monitoring copies them (its filter plugin alert_rules_for), the rest of each file unchanged."""

from __future__ import annotations

import subprocess  # nosec B404
import sys
from pathlib import Path

import pytest
import yaml

from ops.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules"
PLUGIN = ROOT / "roles" / "monitoring" / "filter_plugins" / "alert_rules.py"
alert_rules = load_script(PLUGIN, "alert_rules")


def rules_of(text: str) -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}


def test_without_an_override_each_file_is_copied_byte_for_byte() -> None:
    for path in RULES.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        assert alert_rules.alert_rules_for(text, {}, path.name) == text
        if "TargetDown" not in rules_of(text):  # an override of another file's alert
            assert alert_rules.alert_rules_for(text, {"TargetDown": "1m"}, path.name) == text


def test_an_override_changes_that_alert_s_wait_and_nothing_else() -> None:
    text = (RULES / "containers.yml").read_text(encoding="utf-8")
    before = rules_of(text)
    name = next(iter(before))
    after_text = alert_rules.alert_rules_for(text, {name: "90s", "TargetDown": "1m"}, "containers.yml")
    after = rules_of(after_text)
    assert after[name]["for"] == "90s"
    for other, rule in before.items():
        assert after[other] == ({**rule, "for": "90s"} if other == name else rule)
    assert after_text.startswith(f"# containers.yml with monitoring_alert_for applied ({name} for 90s)")


@pytest.mark.parametrize("duration", ["5", "1 m", "", "5min", 60, None])
def test_a_value_that_is_no_prometheus_duration_is_refused_by_name(duration: object) -> None:
    text = (RULES / "targets.yml").read_text(encoding="utf-8")
    with pytest.raises(alert_rules.AlertRulesError, match=r"TargetDown: .* is not a Prometheus duration"):
        alert_rules.alert_rules_for(text, {"TargetDown": duration}, "targets.yml")


def test_the_names_of_every_alert_let_the_role_refuse_an_unknown_one() -> None:
    texts = [path.read_text(encoding="utf-8") for path in sorted(RULES.glob("*.yml"))]
    names = alert_rules.alert_names(texts)
    assert "TargetDown" in names
    assert "HostDiskNearlyFull" in names
    assert len(names) == len(set(names))


def run_role_tasks(tmp_path: Path, overrides: dict) -> subprocess.CompletedProcess[str]:
    """The role's own two tasks (the check, then the copy without promtool) against a folder here."""
    tasks = yaml.safe_load(
        (ROOT / "roles" / "monitoring" / "tasks" / "config.yml").read_text(encoding="utf-8")
    )
    wanted = [t for t in tasks if "monitoring_alert_for" in t["name"] or t["name"] == "Copy the alert rules"]
    assert len(wanted) == 2, [t["name"] for t in tasks]
    for task in wanted:
        task.get("ansible.builtin.copy", {}).pop("validate", None)
        task.get("ansible.builtin.copy", {}).update(owner=None, group=None)
        task.pop("notify", None)
    (tmp_path / "rules").mkdir(parents=True)
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "monitoring_rules_src": str(RULES),
                "monitoring_rule_files": sorted(str(p) for p in RULES.glob("*.yml")),
                "monitoring_config_dir": str(tmp_path),
                "monitoring_alert_for": overrides,
            },
            "tasks": wanted,
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    env_bin = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(  # nosec B603
        [str(env_bin), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
        env={"ANSIBLE_FILTER_PLUGINS": str(PLUGIN.parent), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip


def test_the_role_s_tasks_copy_the_override_and_refuse_an_alert_no_rule_defines(tmp_path: Path) -> None:
    done = run_role_tasks(tmp_path / "ok", {"TargetDown": "1m"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert rules_of((tmp_path / "ok" / "rules" / "targets.yml").read_text())["TargetDown"]["for"] == "1m"
    copied = (tmp_path / "ok" / "rules" / "containers.yml").read_bytes()
    assert copied == (RULES / "containers.yml").read_bytes()
    refused = run_role_tasks(tmp_path / "bad", {"TargetDwn": "1m"})
    assert refused.returncode != 0
    assert "monitoring_alert_for names TargetDwn, which no rule file" in refused.stdout
    assert not list((tmp_path / "bad" / "rules").iterdir())  # nothing copied
