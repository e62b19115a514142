"""The rocketchat_bootstrap role: its argument specs document exactly its defaults."""

from __future__ import annotations

import pytest
import yaml
from plugins.collection import ROOT

pytestmark = pytest.mark.unit

ROLE = ROOT / "roles" / "rocketchat_bootstrap"


def load(path):
    return yaml.safe_load((ROLE / path).read_text())


def test_argument_specs_match_defaults():
    defaults = load("defaults/main.yml")
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults), set(options) ^ set(defaults)
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], name
        assert spec.get("description"), name


def test_every_variable_is_prefixed_and_documented():
    defaults = load("defaults/main.yml")
    docs = (ROOT / "docs" / "rocketchat-configuration.md").read_text()
    readme = (ROLE / "README.md").read_text()
    for name in defaults:
        assert name.startswith("rocketchat_bootstrap_")
        assert name in docs, f"{name} missing from docs/rocketchat-configuration.md"
        assert name in readme, f"{name} missing from the role README"


def test_secrets_default_to_empty_and_are_required():
    defaults = load("defaults/main.yml")
    assert defaults["rocketchat_bootstrap_admin_password"] == ""
    assert defaults["rocketchat_bootstrap_bot_password"] == ""
    assert defaults["rocketchat_bootstrap_smtp"]["password"] == ""
    validate = (ROLE / "tasks" / "validate.yml").read_text()
    assert "rocketchat_bootstrap_admin_password | length > 0" in validate
    assert "rocketchat_bootstrap_bot_password | length > 0" in validate
