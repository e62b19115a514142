"""Shared test scaffolding: each deployable part contributes one plugin module in tests/plugins/."""

pytest_plugins = [
    "plugins.processes",
    "plugins.collection",
    "plugins.erp",
    "plugins.rocketchat",
    "plugins.bot",
    "plugins.infra",
    "plugins.tracker",
]
