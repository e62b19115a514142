"""Rocket.Chat's database migrations at startup (apps/meteor/server/lib/migrations.ts), without the lock.

The database holds one control document, `{_id: 'control', version, locked}` (the state file's
`migrations`). This build knows the migrations 1..SIM_MIGRATION_VERSION, each a no-op here; at
startup `migrate_database` applies Rocket.Chat's rule for target 'latest':

- no control document or version 0 (a fresh database): set to the latest version, nothing run;
- version == latest: "Not migrating, already at version N";
- an older known version: "Migrating from version a -> b", each up() in turn, "Finished migrating.";
- a version this build does not know (the database was migrated by a newer Rocket.Chat): Rocket.Chat
  throws "Can't find migration version N" and the server does not start. `MigrationError` carries
  the error box; `python -m rocketchat_sim` prints it and exits 1 before anything is served or saved.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("rocketchat_sim.migrations")

# Rocket.Chat's logger level `startup` (51) sits above `error` (50): its migration lines show at any
# LOG_LEVEL. Here: between ERROR and CRITICAL, so SIM_LOG_LEVEL=warning (the default) shows them.
STARTUP = 45
logging.addLevelName(STARTUP, "STARTUP")


class MigrationError(RuntimeError):
    """The server stops: `box` is Rocket.Chat's error box, to print as it is."""

    def __init__(self, message: str, box: str) -> None:
        super().__init__(message)
        self.box = box


def control_document(version: int) -> dict[str, Any]:
    return {"_id": "control", "version": version, "locked": False}


def error_box(title: str, message: str) -> str:
    """showBox() of apps/meteor/server/lib/logger/showBox.ts: a frame as wide as the longest line, the
    title centred as underscore.string's lrpad centres it (the odd space on the left)."""
    lines = message.split("\n")
    width = max(len(line) for line in lines)
    spare = max(width - len(title), 0)
    centred = " " * (spare - spare // 2) + title + " " * (spare // 2)
    top = f"+--{'-' * width}--+"
    blank = f"|  {' ' * width}  |"
    return "\n".join(
        [top, f"|  {centred}  |", top, blank]
        + [f"|  {line.ljust(width)}  |" for line in lines]
        + [blank, top]
    )


def _stopped(error: str, this_version: str, locked_at: int, target: int) -> MigrationError:
    # showError() of migrations.ts (the commit lines left out: the simulator has no Rocket.Chat build)
    box = error_box(
        "ERROR! SERVER STOPPED",
        "\n".join(
            [
                "Your database migration failed:",
                error,
                "",
                "Please make sure you are running the latest version and try again.",
                "If the problem persists, please contact support.",
                "",
                f"This Rocket.Chat version: {this_version}",
                f"Database locked at version: {locked_at}",
                f"Database target version: {target}",
            ]
        ),
    )
    return MigrationError(error, box)


def migrate_database(control: dict[str, Any] | None, latest: int, this_version: str) -> dict[str, Any]:
    """The control document after startup's migrateDatabase('latest'); MigrationError when the server
    must stop. `control` is the stored document (None: the database has none, i.e. version 0)."""
    current = int((control or {}).get("version", 0))
    known = range(1, latest + 1)  # the ordered migration list: 1..latest, each up() a no-op
    if current == 0:
        return control_document(latest)  # fresh database: set to the latest known version, nothing run
    if current == latest:
        log.log(STARTUP, "Not migrating, already at version %s", latest)
        return control_document(current)
    if current not in known:
        raise _stopped(f"Can't find migration version {current}", this_version, current, latest)
    log.log(STARTUP, "Migrating from version %s -> %s", current, latest)
    for version in range(current + 1, latest + 1):
        log.log(STARTUP, "Running up() on version %s", version)
    log.log(STARTUP, "Finished migrating.")
    return control_document(latest)
