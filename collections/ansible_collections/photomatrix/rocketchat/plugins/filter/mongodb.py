"""What MongoDB's replica-set members answer, read for the rolling upgrade (playbooks/upgrade.yml) and the
feature compatibility version step (playbooks/mongodb_fcv.yml).

Each member is asked in its own container (roles/mongodb, member_state.yml): mongosh prints one line of
relaxed Extended JSON, ``{"hello": db.hello(), "status": replSetGetStatus, "version": db.version(),
"fcv": getParameter's featureCompatibilityVersion}``. ``mongodb_member`` reads one such answer (the
member's own view), ``mongodb_replica_roles`` the answers of every member: which one is PRIMARY, which are
SECONDARY, and every reason not to roll the set now.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

# rs.status()'s member states (MongoDB's replica set member states).
STATES = {
    0: "STARTUP",
    1: "PRIMARY",
    2: "SECONDARY",
    3: "RECOVERING",
    5: "STARTUP2",
    6: "UNKNOWN",
    7: "ARBITER",
    8: "DOWN",
    9: "ROLLBACK",
    10: "REMOVED",
}
ROLLED = ("PRIMARY", "SECONDARY")


def mongodb_series(version: Any) -> str:
    """The release series (``8.0``) of a version (``8.0.29``) or of an image reference (``…/mongo:8.0.29``);
    empty when there is none (a reference by digest)."""
    match = re.search(r"(?:^|:)(\d+)\.(\d+)(?:\.\d+)?(?:[-+][\w.-]*)?$", str(version or ""))
    return f"{match.group(1)}.{match.group(2)}" if match else ""


def mongodb_answer(answer: Any) -> dict:
    """The answer as a mapping: a mapping as it is; a text (mongosh's stdout) by its last line that is a
    JSON object; ``{}`` when there is none."""
    if isinstance(answer, dict):
        return answer
    for line in reversed(str(answer or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    return {}


def _optime_seconds(member: dict) -> float | None:
    """The seconds of a member's last applied operation in rs.status() (``optime.ts``, else
    ``optimeDate``), relaxed Extended JSON."""
    optime = member.get("optime")
    ts = optime.get("ts") if isinstance(optime, dict) else None
    if isinstance(ts, dict) and isinstance(ts.get("$timestamp"), dict):
        return float(ts["$timestamp"].get("t", 0))
    date = member.get("optimeDate")
    if isinstance(date, dict):
        value = date.get("$date")
        if isinstance(value, dict) and "$numberLong" in value:
            return int(value["$numberLong"]) / 1000
        if isinstance(value, (int, float)):
            return value / 1000
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _state(member: dict) -> str:
    if member.get("stateStr"):
        return str(member["stateStr"])
    return STATES.get(member.get("state"), f"state {member.get('state')}")


def mongodb_member(answer: Any) -> dict:
    """One member's own view, from its answer.

    ``name`` (host:port as the set knows it), ``set``, ``state`` (PRIMARY, SECONDARY, RECOVERING…; None
    when it did not answer), ``primary`` (the member it sees as PRIMARY, or None), ``lag`` (seconds its
    last applied operation is behind that primary's; 0 on the primary; None without a primary),
    ``members`` (every member name its configuration lists), ``version``, ``fcv`` and ``fcv_target``
    (set while the feature compatibility version is changing), ``error`` (why there is no state).
    """
    data = mongodb_answer(answer)
    hello = data.get("hello") if isinstance(data.get("hello"), dict) else {}
    status = data.get("status") if isinstance(data.get("status"), dict) else {}
    fcv = data.get("fcv") if isinstance(data.get("fcv"), dict) else {}
    found: dict[str, Any] = {
        "name": hello.get("me"),
        "set": hello.get("setName") or status.get("set"),
        "state": None,
        "primary": None,
        "lag": None,
        "members": [],
        "version": data.get("version"),
        "fcv": fcv.get("version"),
        "fcv_target": fcv.get("targetVersion"),
        "error": None,
    }
    if not data:
        found["error"] = "no answer (mongosh printed no JSON)"
        return found
    if status.get("ok") != 1:
        reason = status.get("codeName") or "error"
        found["error"] = f"replSetGetStatus failed: {reason}: {status.get('errmsg', 'no message')}"
        return found
    members = [m for m in status.get("members", []) if isinstance(m, dict)]
    found["members"] = [str(m.get("name")) for m in members]
    me = next((m for m in members if m.get("self")), None)
    if me is None:
        found["error"] = "rs.status() lists no member as itself"
        return found
    found["name"] = found["name"] or me.get("name")
    found["state"] = _state(me)
    primary = next((m for m in members if _state(m) == "PRIMARY" and m.get("health", 1) == 1), None)
    if primary is not None:
        found["primary"] = primary.get("name")
        if primary is me:
            found["lag"] = 0
        else:
            mine, theirs = _optime_seconds(me), _optime_seconds(primary)
            if mine is not None and theirs is not None:
                found["lag"] = max(0, int(theirs - mine))
    return found


def mongodb_replica_roles(
    answers: dict[str, Any], target_series: str = "", fcv_changing: bool = False
) -> dict:
    """The members (inventory host -> answer) sorted by their own state.

    ``primary`` and ``secondaries`` (inventory hosts, in the order given), ``set``, ``members`` (host ->
    mongodb_member) and ``problems``: a member that did not answer or is in another state than PRIMARY
    or SECONDARY, not exactly one PRIMARY, members of more than one set, a member of the set that is no
    host asked (it would keep its version), a change of the feature compatibility version under way
    (unless ``fcv_changing``: make mongodb-fcv finishes it), and, with ``target_series`` (the series of
    the image to run, e.g. ``8.2``), a member whose feature compatibility version is below its own series
    (a mongod of the next series refuses to start on it).
    """
    if not isinstance(answers, dict):
        raise TypeError(f"mongodb_replica_roles expects host -> answer, not {type(answers).__name__}")
    members = {str(host): mongodb_member(answer) for host, answer in answers.items()}
    problems: list[str] = []
    primary: list[str] = []
    secondaries: list[str] = []
    for host, member in members.items():
        label = f"{host} ({member['name']})" if member["name"] else host
        if member["error"]:
            problems.append(f"{label}: {member['error']}")
        elif member["state"] == "PRIMARY":
            primary.append(host)
        elif member["state"] == "SECONDARY":
            secondaries.append(host)
        else:
            problems.append(
                f"{label} is {member['state']}: only PRIMARY and SECONDARY members are rolled; wait until "
                "rs.status() shows it SECONDARY (or repair it), then run again"
            )
    if not members:
        problems.append("no member was asked")
    elif len(primary) == 0:
        asked = ", ".join(members)
        problems.append(f"no member is PRIMARY (asked: {asked}): the set has no primary to step down")
    elif len(primary) > 1:
        said = ", ".join(primary)
        problems.append(f"{len(primary)} members say they are PRIMARY ({said}): exactly one must be")
    sets = sorted({str(m["set"]) for m in members.values() if m["set"]})
    if len(sets) > 1:
        problems.append(f"the members belong to different replica sets: {', '.join(sets)}")
    known = {str(m["name"]) for m in members.values() if m["name"]}
    listed = sorted({name for m in members.values() for name in m["members"]} - known)
    if listed:
        problems.append(
            f"{', '.join(listed)}: in the replica set but no host of the mongodb group asked here (it would "
            "keep its version): add it to the inventory, or remove it from the set"
        )
    for host, member in members.items():
        if member["fcv_target"] and not fcv_changing:
            problems.append(
                f"{host}: the feature compatibility version is changing ({member['fcv']} to "
                f"{member['fcv_target']}): finish that first (make mongodb-fcv)"
            )
        series = mongodb_series(member["version"])
        if target_series and series and series != target_series and member["fcv"] and member["fcv"] != series:
            problems.append(
                f"{host} runs {member['version']} with feature compatibility version {member['fcv']}: "
                f"MongoDB {target_series} does not start on it; raise it to {series} first "
                f"(make mongodb-fcv FCV={series} CONFIRM=true), then upgrade"
            )
    return {
        "set": sets[0] if len(sets) == 1 else None,
        "primary": primary,
        "secondaries": secondaries,
        "members": members,
        "problems": problems,
    }


class FilterModule:
    """photomatrix.rocketchat MongoDB filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "mongodb_answer": mongodb_answer,
            "mongodb_member": mongodb_member,
            "mongodb_replica_roles": mongodb_replica_roles,
            "mongodb_series": mongodb_series,
        }
