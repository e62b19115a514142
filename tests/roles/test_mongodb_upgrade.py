"""MongoDB in `make upgrade` (playbooks/upgrade.yml), `make mongodb-fcv` (playbooks/mongodb_fcv.yml) and
`make rollback`. MongoDB cannot run here, so:

- the answers a member gives (hello and rs.status() as relaxed Extended JSON, the shape mongosh prints)
  are built below and read by the filters (photomatrix.rocketchat.mongodb_member / mongodb_replica_roles)
  and by make upgrade's sorting step (playbooks/tasks/upgrade_mongodb_roles.yml) through ansible-playbook;
- the real playbooks run against members on this machine (ansible_connection local) where mongod does
  not run (they only say so, and call no docker at all), and where it "runs": a `docker` first on PATH
  answers as the members' containers would and records every call (DOCKER_HOST points nowhere, so the
  Docker modules reach no engine): the order (secondaries, then the primary after rs.stepDown()), the
  refusals, the feature compatibility version unchanged without confirmation and set on the primary
  alone with it, no password on any command line.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.photomatrix.rocketchat.plugins.filter.mongodb import (
    mongodb_answer,
    mongodb_member,
    mongodb_replica_roles,
    mongodb_series,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PORT = 27017
NAMES = {"m1": "10.77.0.21:27017", "m2": "10.77.0.22:27017", "m3": "10.77.0.23:27017"}
STATE_CODES = {"PRIMARY": 1, "SECONDARY": 2, "RECOVERING": 3, "STARTUP2": 5, "ARBITER": 7, "DOWN": 8}
NOW = 1_765_000_000
IMAGE = "docker.io/library/mongo:8.0.29"


def timestamp(seconds: int, increment: int = 1) -> dict:
    return {"$timestamp": {"t": seconds, "i": increment}}


def date(seconds: int) -> dict:
    return {"$date": f"{datetime.datetime.fromtimestamp(seconds, datetime.UTC):%Y-%m-%dT%H:%M:%S.000Z}"}


def answer(
    me: str,
    states: dict[str, str],
    *,
    version: str = "8.0.29",
    fcv: str = "8.0",
    behind: int = 0,
    replica_set: str = "rs0",
) -> dict:
    """What mongosh prints for the member ME (member_state.yml's script): db.hello() and
    replSetGetStatus as MongoDB 8.0 answers them, in relaxed Extended JSON, with the members' STATES as
    this member sees them; it applied its last operation BEHIND seconds after the primary's."""
    primary = next((name for name, state in states.items() if state == "PRIMARY"), None)
    members = []
    for index, (name, state) in enumerate(states.items()):
        optime = NOW - (behind if name == me else 0)
        member = {
            "_id": index,
            "name": name,
            "health": 0 if state == "DOWN" else 1,
            "state": STATE_CODES[state],
            "stateStr": state if state != "DOWN" else "(not reachable/healthy)",
            "uptime": 3600,
            "optime": {"ts": timestamp(optime), "t": 4},
            "optimeDate": date(optime),
            "lastAppliedWallTime": date(optime),
            "lastDurableWallTime": date(optime),
            "syncSourceHost": "" if state == "PRIMARY" else (primary or ""),
            "syncSourceId": -1 if state == "PRIMARY" else 0,
            "infoMessage": "",
            "configVersion": 1,
            "configTerm": 4,
        }
        if name == me:
            member["self"] = True
        else:
            member |= {"lastHeartbeat": date(NOW), "pingMs": 0, "lastHeartbeatMessage": ""}
        if state == "PRIMARY":
            member |= {"electionTime": timestamp(NOW - 3600), "electionDate": date(NOW - 3600)}
        members.append(member)
    state = states[me]
    hello = {
        "topologyVersion": {"processId": {"$oid": "675300000000000000000001"}, "counter": 6},
        "hosts": list(states),
        "setName": replica_set,
        "setVersion": 1,
        "isWritablePrimary": state == "PRIMARY",
        "secondary": state == "SECONDARY",
        "me": me,
        "lastWrite": {
            "opTime": {"ts": timestamp(NOW - behind), "t": 4},
            "lastWriteDate": date(NOW - behind),
            "majorityOpTime": {"ts": timestamp(NOW - behind), "t": 4},
            "majorityWriteDate": date(NOW - behind),
        },
        "maxBsonObjectSize": 16777216,
        "maxMessageSizeBytes": 48000000,
        "maxWriteBatchSize": 100000,
        "localTime": date(NOW),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 42,
        "minWireVersion": 0,
        "maxWireVersion": 25,
        "readOnly": False,
        "ok": 1,
        "$clusterTime": {
            "clusterTime": timestamp(NOW),
            "signature": {
                "hash": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "subType": "00"}},
                "keyId": 0,
            },
        },
        "operationTime": timestamp(NOW),
    }
    if primary:
        hello["primary"] = primary
    status = {
        "set": replica_set,
        "date": date(NOW),
        "myState": STATE_CODES[state],
        "term": 4,
        "syncSourceHost": "" if state == "PRIMARY" else (primary or ""),
        "heartbeatIntervalMillis": 2000,
        "majorityVoteCount": 2,
        "writeMajorityCount": 2,
        "votingMembersCount": len(states),
        "writableVotingMembersCount": len(states),
        "members": members,
        "ok": 1,
    }
    return {"hello": hello, "status": status, "version": version, "fcv": {"version": fcv}}


def set_of(states: dict[str, str], **kwargs) -> dict[str, dict]:
    """Each host's answer for a set of m1-m3 in STATES (host -> state)."""
    by_name = {NAMES[host]: state for host, state in states.items()}
    return {host: answer(NAMES[host], by_name, **kwargs) for host in states}


ONE_PRIMARY = {"m1": "PRIMARY", "m2": "SECONDARY", "m3": "SECONDARY"}


# --------------------------------------------------------------------------------------------------
# The filters, in process.


@pytest.mark.unit
def test_one_primary_and_two_secondaries_are_sorted() -> None:
    roles = mongodb_replica_roles(set_of(ONE_PRIMARY))
    assert roles["problems"] == []
    assert roles["primary"] == ["m1"]
    assert roles["secondaries"] == ["m2", "m3"]
    assert roles["set"] == "rs0"
    assert roles["members"]["m2"]["primary"] == NAMES["m1"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("states", "said"),
    [
        ({"m1": "SECONDARY", "m2": "SECONDARY", "m3": "SECONDARY"}, "no member is PRIMARY"),
        ({"m1": "PRIMARY", "m2": "PRIMARY", "m3": "SECONDARY"}, "2 members say they are PRIMARY (m1, m2)"),
        ({"m1": "PRIMARY", "m2": "SECONDARY", "m3": "RECOVERING"}, "m3 (10.77.0.23:27017) is RECOVERING"),
        ({"m1": "PRIMARY", "m2": "STARTUP2", "m3": "SECONDARY"}, "m2 (10.77.0.22:27017) is STARTUP2"),
    ],
)
def test_anything_but_one_primary_and_secondaries_is_refused(states: dict, said: str) -> None:
    problems = mongodb_replica_roles(set_of(states))["problems"]
    assert any(said in problem for problem in problems), problems


@pytest.mark.unit
def test_a_member_of_the_set_outside_the_inventory_is_refused() -> None:
    answers = set_of(ONE_PRIMARY)
    del answers["m3"]  # still in the set, but no host asked
    problems = mongodb_replica_roles(answers)["problems"]
    assert any(p.startswith("10.77.0.23:27017: in the replica set but no host") for p in problems), problems


@pytest.mark.unit
def test_a_member_that_cannot_say_its_state_is_refused() -> None:
    answers = set_of(ONE_PRIMARY)
    answers["m2"]["status"] = {
        "ok": 0,
        "errmsg": "no replset config has been received",
        "code": 94,
        "codeName": "NotYetInitialized",
    }
    answers["m3"] = "MongoServerError: Authentication failed."
    problems = mongodb_replica_roles(answers)["problems"]
    assert any("m2 (10.77.0.22:27017): replSetGetStatus failed: NotYetInitialized" in p for p in problems)
    assert any(p.startswith("m3: no answer") for p in problems), problems


@pytest.mark.unit
def test_the_next_series_is_refused_on_a_feature_compatibility_version_below_the_running_one() -> None:
    below = set_of(ONE_PRIMARY, version="8.0.29", fcv="7.0")
    assert mongodb_replica_roles(below, "8.0")["problems"] == []  # a patch release of the same series
    problems = mongodb_replica_roles(below, "8.2")["problems"]
    assert len(problems) == 3
    assert "raise it to 8.0 first (make mongodb-fcv FCV=8.0 CONFIRM=true)" in problems[0]
    assert mongodb_replica_roles(set_of(ONE_PRIMARY, fcv="8.0"), "8.2")["problems"] == []


@pytest.mark.unit
def test_a_change_of_the_feature_compatibility_version_under_way_stops_the_upgrade_not_the_fcv_step() -> None:
    answers = set_of(ONE_PRIMARY)
    for one in answers.values():
        one["fcv"] = {"version": "7.0", "targetVersion": "8.0"}
    assert any("is changing (7.0 to 8.0)" in p for p in mongodb_replica_roles(answers)["problems"])
    assert mongodb_replica_roles(answers, "", True)["problems"] == []


@pytest.mark.unit
def test_a_member_reads_its_lag_behind_the_primary() -> None:
    states = {NAMES["m1"]: "PRIMARY", NAMES["m2"]: "SECONDARY"}
    behind = mongodb_member(answer(NAMES["m2"], states, behind=42))
    assert (behind["state"], behind["primary"], behind["lag"]) == ("SECONDARY", NAMES["m1"], 42)
    assert mongodb_member(answer(NAMES["m1"], states))["lag"] == 0
    # optimeDate alone (no ts) is read too.
    alone = answer(NAMES["m2"], states, behind=7)
    for member in alone["status"]["members"]:
        del member["optime"]
    assert mongodb_member(alone)["lag"] == 7
    # No primary in its view: no lag, so no member waits on it as caught up.
    lost = mongodb_member(answer(NAMES["m2"], {NAMES["m1"]: "DOWN", NAMES["m2"]: "SECONDARY"}))
    assert (lost["primary"], lost["lag"]) == (None, None)


@pytest.mark.unit
def test_the_answer_is_mongoshs_last_json_line() -> None:
    text = "Warning: a deprecation\n" + json.dumps(answer(NAMES["m1"], {NAMES["m1"]: "PRIMARY"})) + "\n"
    assert mongodb_answer(text)["version"] == "8.0.29"
    assert mongodb_answer("MongoServerError: Authentication failed.") == {}
    assert mongodb_series(IMAGE) == "8.0"
    assert mongodb_series("8.2.1") == "8.2"
    assert mongodb_series("docker.io/library/mongo@sha256:" + "a" * 64) == ""


# --------------------------------------------------------------------------------------------------
# Through ansible-playbook.


def ansible_playbook(playbook: str, inventory: Path, *args: str, env: dict | None = None):
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **(env or {})}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip


def make_fcv(hosts: Path, env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    """`make mongodb-fcv` as docs/operations.md gives it, for the inventory HOSTS."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **env}
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "mongodb-fcv", f"INVENTORY={hosts}",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip


def flat(run: subprocess.CompletedProcess[str]) -> str:
    """The output on one line: the YAML callback's folding undone (a double-quoted scalar's escaped line
    break joins without a space), quotes and escapes aside."""
    return " ".join(re.sub(r"\\\n\s*", "", run.stdout + run.stderr).split())


def members_inventory(tmp: Path, host_vars: dict[str, dict] | None = None, **common) -> Path:
    """m1-m3 as this machine in the group mongodb; photomatrix_root and the controller-side store under
    TMP; each member's container pmtest-mongodb-<host> (the recording docker below tells them apart)."""
    hosts = {
        host: {"mongodb_container_name": f"pmtest-mongodb-{host}", **(host_vars or {}).get(host, {})}
        for host in NAMES
    }
    common = {
        "ansible_connection": "local",
        # Never sudo: PATH (the recording docker below) stays as it is.
        "ansible_become": False,
        "ansible_python_interpreter": sys.executable,
        "photomatrix_root": str(tmp / "root"),
        "photomatrix_bootstrap_secrets_dir": str(tmp / "store"),
        "mongodb_upgrade_poll_delay": 1,
        **common,
    }
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"mongodb": {"hosts": hosts}}, "vars": common}}))
    return path


# --- the sorting step with the answers given as variables ---------------------------------------


def sort(tmp: Path, states: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """tests/roles/upgrade_mongodb_roles.yml with each host's answer for STATES as its variable."""
    answers = {host: {"mongodb_member_answer": said} for host, said in set_of(states).items()}
    out = tmp / "roles.json"
    run = ansible_playbook("tests/roles/upgrade_mongodb_roles.yml", members_inventory(tmp, answers),
                           "-e", f"roles_out={out}")  # fmt: skip
    return run, out


@pytest.mark.integration
def test_the_sorting_step_puts_one_primary_and_two_secondaries_in_their_groups(tmp_path: Path) -> None:
    run, out = sort(tmp_path, ONE_PRIMARY)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert json.loads(out.read_text()) == {"primary": ["m1"], "secondaries": ["m2", "m3"]}
    assert "MongoDB replica set rs0: PRIMARY m1; SECONDARY m2, m3." in flat(run)


SORT_REFUSALS = {
    "no primary": ({"m1": "SECONDARY", "m2": "SECONDARY", "m3": "SECONDARY"},
                   "no member is PRIMARY (asked: m1, m2, m3)"),
    "two primaries": ({"m1": "PRIMARY", "m2": "SECONDARY", "m3": "PRIMARY"},
                      "2 members say they are PRIMARY (m1, m3): exactly one must be"),
    "recovering": ({"m1": "PRIMARY", "m2": "RECOVERING", "m3": "SECONDARY"},
                   "m2 (10.77.0.22:27017) is RECOVERING: only PRIMARY and SECONDARY members are rolled"),
}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("case", SORT_REFUSALS)
def test_the_sorting_step_refuses_anything_but_one_primary_and_secondaries(tmp_path: Path, case: str) -> None:
    states, said = SORT_REFUSALS[case]
    run, out = sort(tmp_path, states)
    assert run.returncode != 0
    text = flat(run)
    assert f"MongoDB replica set rs0: {said}" in text, text[-3000:]
    assert "Nothing was changed." in text
    assert not out.exists()  # the run stopped there: no later play


# --- the real playbooks -----------------------------------------------------------------------------

STUB = r"""#!{python}
# docker as the MongoDB members' containers answer it: every call recorded in calls.jsonl.
import json, re, sys
from pathlib import Path

here = Path(__file__).resolve().parent.parent
conf = json.loads((here / "docker.json").read_text())
state_file = here / "docker-state.json"
state = json.loads(state_file.read_text()) if state_file.exists() else {{}}
args = sys.argv[1:]
with open(here / "calls.jsonl", "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["container", "inspect"]:
    print(conf["running"][args[-1]])
elif args[:2] == ["image", "inspect"]:
    print(conf["image_id"])
elif args[:1] == ["ps"]:
    print("\n".join(conf.get("ps", [])))
elif args[:1] == ["inspect"]:
    print(json.dumps(conf.get("inspect", [])))
elif args[:1] == ["exec"]:
    container, script = args[1], args[-1]
    if "replSetStepDown" in script:
        state[container] = "after_stepdown"
    elif "setFeatureCompatibilityVersion" in script:
        state["fcv"] = re.search(r'setFeatureCompatibilityVersion: "([0-9.]+)"', script).group(1)
    elif "replSetGetStatus" in script:
        said = conf["members"][container][state.get(container, "before")]
        if "fcv" in state:
            said["fcv"] = {{"version": state["fcv"]}}
        print(json.dumps(said))
        sys.exit(0)
    else:
        sys.exit(2)
    # Changed by one member at a time (serial, or the primary alone): written whole, then renamed.
    (here / "docker-state.tmp").write_text(json.dumps(state))
    (here / "docker-state.tmp").replace(state_file)
    print(json.dumps({{"ok": 1}}))
else:
    sys.exit(1)
"""


class Docker:
    """A `docker` first on PATH answering for the members' containers, and what it was called with."""

    def __init__(self, tmp: Path, config: dict) -> None:
        self.tmp = tmp
        (tmp / "bin").mkdir(exist_ok=True)
        stub = tmp / "bin" / "docker"
        stub.write_text(STUB.format(python=sys.executable), encoding="utf-8")
        stub.chmod(0o755)
        (tmp / "docker.json").write_text(json.dumps(config), encoding="utf-8")

    @property
    def env(self) -> dict[str, str]:
        # DOCKER_HOST: the Docker modules (the role's container task) reach no engine.
        return {"PATH": f"{self.tmp / 'bin'}:{os.environ['PATH']}", "DOCKER_HOST": "unix:///nonexistent.sock"}

    @property
    def calls(self) -> list[list[str]]:
        log = self.tmp / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def asked(self) -> list[tuple[str, str]]:
        """(the container's host, what) of each docker exec, in order."""
        found = []
        for call in self.calls:
            if call[:1] == ["exec"]:
                script = call[-1]
                what = "state"
                if "replSetStepDown" in script:
                    what = "step down"
                elif "setFeatureCompatibilityVersion" in script:
                    what = "set fcv"
                found.append((call[1].rsplit("-", 1)[-1], what))
        return found


def members_config(states: dict[str, str], *, after: dict | None = None, stale: tuple = (), **kwargs) -> dict:
    """The recording docker's answers: each member's before its step down (and AFTER it: host -> the
    states it then sees), the image each runs (the STALE hosts an older one than the image to run)."""
    config: dict = {"members": {}, "running": {}, "image_id": "sha256:" + "1" * 64}
    for host, said in set_of(states, **kwargs).items():
        container = f"pmtest-mongodb-{host}"
        config["members"][container] = {"before": said}
        config["running"][container] = "sha256:" + ("0" if host in stale else "1") * 64
    for host, later in (after or {}).items():
        by_name = {NAMES[h]: s for h, s in later.items()}
        config["members"][f"pmtest-mongodb-{host}"]["after_stepdown"] = answer(NAMES[host], by_name, **kwargs)
    return config


# mongod runs: not an offline deployment, whatever this machine's local facts say.
RUNS = {"container_images_offline": False, "mongodb_run_mongod": True}
NOT_RUNNING = {
    "mongodb_run_mongod: false": {"mongodb_run_mongod": False},
    "offline images: no official MongoDB image here": {"container_images_offline": True},
}


@pytest.mark.integration
@pytest.mark.parametrize("reason", NOT_RUNNING)
def test_where_mongod_does_not_run_the_upgrade_only_says_so(tmp_path: Path, reason: str) -> None:
    docker = Docker(tmp_path, {})
    hosts = members_inventory(tmp_path, **NOT_RUNNING[reason])
    run = ansible_playbook("playbooks/upgrade.yml", hosts, env=docker.env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    text = flat(run)
    for host in NAMES:
        said = f"!!! MONGODB NOT UPGRADED on {host}: mongod does not run here ({reason}): nothing to roll"
        assert said in text, text[-3000:]
    assert docker.calls == []  # no docker at all
    for play in ("MongoDB secondaries, one member at a time", "MongoDB primary, after rs.stepDown()"):
        assert re.search(rf"PLAY \[{re.escape(play)}\] \**\s*skipping: no hosts matched", text), play
    assert not (tmp_path / "store").exists()  # no secret was even looked up


@pytest.mark.integration
def test_the_upgrade_rolls_the_secondaries_then_the_primary_and_leaves_current_members(
    tmp_path: Path,
) -> None:
    docker = Docker(tmp_path, members_config(ONE_PRIMARY))
    run = ansible_playbook("playbooks/upgrade.yml", members_inventory(tmp_path, **RUNS), env=docker.env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    text = flat(run)
    assert "MongoDB replica set rs0: PRIMARY m1; SECONDARY m2, m3." in text
    # Asked once each (at the same time), then each member in its turn: the secondaries one at a time,
    # the primary last.
    asked = docker.asked()
    assert sorted(asked[:3]) == [("m1", "state"), ("m2", "state"), ("m3", "state")], asked
    assert asked[3:] == [("m2", "state"), ("m3", "state"), ("m1", "state")], asked
    for host in NAMES:
        assert f"{host} (MongoDB): already runs {IMAGE}: not re-created." in text
    assert "m1 (10.77.0.21:27017) is PRIMARY on 8.0.29, 0 s behind 10.77.0.21:27017." in text
    assert "m2 (10.77.0.22:27017) is SECONDARY on 8.0.29, 0 s behind 10.77.0.21:27017." in text
    # mongosh reaches the member itself; the password is read inside the container, on no command line.
    uri = f"mongodb://localhost:{PORT}/admin?directConnection=true&serverSelectionTimeoutMS=10000"
    for call in docker.calls:
        if call[:1] == ["exec"]:
            assert call[2:8] == [
                "timeout",
                "30",
                "mongosh",
                "--quiet",
                "--norc",
                f"{uri}&connectTimeoutMS=10000",
            ]
            assert 'readFileSync("/run/secrets/mongodb/root_password"' in call[-1]
            assert not any(a in ("-p", "--password") or "$(cat" in a for a in call), call
    assert not (tmp_path / "store").exists()  # no secret was templated, so none was even generated


@pytest.mark.integration
def test_the_primary_steps_down_and_another_is_elected_before_it_is_re_created(tmp_path: Path) -> None:
    after = {"m1": {"m1": "SECONDARY", "m2": "PRIMARY", "m3": "SECONDARY"}}
    docker = Docker(tmp_path, members_config(ONE_PRIMARY, after=after, stale=("m1",)))
    run = ansible_playbook("playbooks/upgrade.yml", members_inventory(tmp_path, **RUNS), env=docker.env)
    text = flat(run)
    # The recording docker has no engine: re-creating the member fails, after the step down and election.
    assert run.returncode != 0
    assert docker.asked()[3:] == [("m2", "state"), ("m3", "state"), ("m1", "step down"), ("m1", "state")]
    step_down = next(c for c in docker.calls if c[:1] == ["exec"] and "replSetStepDown" in c[-1])
    assert "replSetStepDown: 60, secondaryCatchUpPeriodSecs: 30 }" in step_down[-1]
    assert step_down[3] == "60"  # mongosh's bound: the catch-up period and 30 s
    assert "m1 stepped down; 10.77.0.22:27017 is PRIMARY." in text
    assert "TASK [mongodb : Run MongoDB (internal network only unless a publish address is set)]" in text
    assert "MongoDB upgrade stopped at m1 (primary):" in text


@pytest.mark.integration
def test_the_upgrade_stops_at_the_first_secondary_it_cannot_roll(tmp_path: Path) -> None:
    docker = Docker(tmp_path, members_config(ONE_PRIMARY, stale=("m2", "m1")))
    run = ansible_playbook("playbooks/upgrade.yml", members_inventory(tmp_path, **RUNS), env=docker.env)
    assert run.returncode != 0
    text = flat(run)
    assert "MongoDB upgrade stopped at m2 (secondary):" in text
    # Nothing after it: m3 never rolled, the primary never stepped down.
    assert docker.asked()[3:] == []
    assert "PLAY [MongoDB primary" not in text


@pytest.mark.integration
def test_the_upgrade_refuses_two_primaries_before_anything_changes(tmp_path: Path) -> None:
    docker = Docker(tmp_path, members_config({"m1": "PRIMARY", "m2": "PRIMARY", "m3": "SECONDARY"}))
    run = ansible_playbook("playbooks/upgrade.yml", members_inventory(tmp_path, **RUNS), env=docker.env)
    assert run.returncode != 0
    text = flat(run)
    assert "MongoDB replica set rs0: 2 members say they are PRIMARY (m1, m2): exactly one must be." in text
    assert len(docker.calls) == 3  # the three questions, nothing else
    assert "PLAY [MongoDB secondaries" not in text


# --- make mongodb-fcv -------------------------------------------------------------------------------


@pytest.mark.integration
def test_make_mongodb_fcv_refuses_where_mongod_does_not_run(tmp_path: Path) -> None:
    docker = Docker(tmp_path, {})
    hosts = members_inventory(tmp_path, mongodb_run_mongod=False)
    run = make_fcv(hosts, docker.env, "FCV=8.0", "CONFIRM=true")
    assert run.returncode != 0
    said = ("make mongodb-fcv refused: mongod does not run on m1, m2, m3 (mongodb_run_mongod: false): "
            "there is no feature compatibility version to read or raise. Nothing was changed.")  # fmt: skip
    assert said in flat(run)
    assert docker.calls == []


@pytest.mark.integration
def test_make_mongodb_fcv_without_confirmation_changes_nothing_and_says_what_it_would_do(
    tmp_path: Path,
) -> None:
    docker = Docker(tmp_path, members_config(ONE_PRIMARY, fcv="7.0"))
    run = make_fcv(members_inventory(tmp_path, **RUNS), docker.env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    text = flat(run)
    assert "every member runs 8.0.29; feature compatibility version now 7.0" in text
    assert "NOT CHANGED (no confirmation). Would run on the primary m1:" in text
    assert 'db.adminCommand({setFeatureCompatibilityVersion: "8.0", confirm: true})' in text.replace("\\", "")
    assert "make mongodb-fcv FCV=8.0 CONFIRM=true" in text
    # The three questions, nothing else.
    assert len(docker.calls) == 3
    assert all(what == "state" for _, what in docker.asked())


@pytest.mark.integration
def test_make_mongodb_fcv_confirmed_raises_it_on_the_primary_alone(tmp_path: Path) -> None:
    docker = Docker(tmp_path, members_config(ONE_PRIMARY, fcv="7.0"))
    run = make_fcv(members_inventory(tmp_path, **RUNS), docker.env, "FCV=8.0", "CONFIRM=true")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert [host for host, what in docker.asked() if what == "set fcv"] == ["m1"]
    call = next(c for c in docker.calls if c[:1] == ["exec"] and "setFeatureCompatibilityVersion" in c[-1])
    assert 'setFeatureCompatibilityVersion: "8.0", confirm: true }' in call[-1]
    assert call[3] == "600"  # its own bound: minutes on a large data set
    said = "Feature compatibility version 8.0 set on m1 and reported by every member (m1, m2, m3)."
    assert said in flat(run)
    # Every member asked again afterwards.
    assert sorted(host for host, what in docker.asked()[4:] if what == "state") == ["m1", "m2", "m3"]


FCV_REFUSALS = {
    # the members' versions but 8.0.29, make's arguments, what it says, whether it asked the members first
    "different versions": (
        {"m2": "8.2.1"}, ["FCV=8.2", "CONFIRM=true"],
        "The members run different versions (host, version, FCV: m1 8.0.29 7.0; m2 8.2.1 7.0; m3 8.0.29 7.0)",
        True,
    ),
    "another series": (
        {}, ["FCV=8.2", "CONFIRM=true"], "mongodb_fcv=8.2, but every member runs 8.0.29", True,
    ),
    "no version": (
        {}, ["CONFIRM=true"], "mongodb_fcv_confirm=true (CONFIRM=true) needs the version it confirms", False,
    ),
    "no series": (
        {}, ["FCV=8.0 x", "CONFIRM=true"], 'must be a release series such as 8.0, not "8.0 x"', False,
    ),
}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("case", FCV_REFUSALS)
def test_make_mongodb_fcv_refuses_what_it_must_not_do(tmp_path: Path, case: str) -> None:
    versions, args, said, asked = FCV_REFUSALS[case]
    config = members_config(ONE_PRIMARY, fcv="7.0")
    for host, version in versions.items():
        config["members"][f"pmtest-mongodb-{host}"]["before"]["version"] = version
    docker = Docker(tmp_path, config)
    run = make_fcv(members_inventory(tmp_path, **RUNS), docker.env, *args)
    assert run.returncode != 0
    text = flat(run)
    assert said in text.replace("\\", ""), text[-3000:]
    assert "Nothing was changed." in text
    # The three questions, or (an argument refused first) not even those.
    assert len(docker.calls) == (3 if asked else 0)
    assert all(what == "state" for _, what in docker.asked())


# --- make rollback ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("runs", [True, False], ids=["mongod runs", "no mongod"])
def test_rollback_says_what_it_does_about_mongodb(tmp_path: Path, runs: bool) -> None:
    releases = tmp_path / "root" / "releases"
    releases.mkdir(parents=True)
    before = "docker.io/library/mongo:8.0.28"
    record = {
        "in_progress": False,
        "started": "2026-12-06T10:00:00+00:00",
        "erp_revision": "",
        "backup": "/var/backups/photomatrix/photomatrix-x.pmbackup",
        "containers": {"photomatrix-mongodb": {"image": before, "id": "sha256:" + "0" * 64}},
    }
    (releases / "previous.json").write_text(json.dumps(record))
    running = {"Name": "/photomatrix-mongodb", "Image": "sha256:" + "1" * 64, "Config": {"Image": IMAGE}}
    docker = Docker(tmp_path, {"ps": ["c1"], "inspect": [running]})
    one = {"hosts": {"m1": None}}
    common = {
        "ansible_connection": "local",
        "ansible_become": False,
        "ansible_python_interpreter": sys.executable,
        "photomatrix_root": str(tmp_path / "root"),
        "container_images_offline": False,
        "mongodb_run_mongod": runs,
    }
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(
        yaml.safe_dump({"all": {"children": {"docker_hosts": one, "mongodb": one}, "vars": common}})
    )
    run = ansible_playbook("playbooks/rollback.yml", hosts, env=docker.env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    text = flat(run)
    if runs:
        said = (f"m1 (MongoDB): NOT rolled back by this playbook: it keeps {IMAGE} (before the upgrade: "
                f"{before}). Until the feature compatibility version is raised")  # fmt: skip
        assert said in text
        assert (
            "the pre-upgrade backup /var/backups/photomatrix/photomatrix-x.pmbackup brings the data" in text
        )
    else:
        said = ("m1 (MongoDB): NOT rolled back by this playbook: mongod does not run here "
                "(mongodb_run_mongod: false): nothing to roll back.")  # fmt: skip
        assert said in text
    assert "MongoDB excepted (each member said what it runs)" in text
    assert not any(c[:1] == ["exec"] for c in docker.calls)  # MongoDB itself is not asked


# --- the playbooks as files ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("name", ["upgrade.yml", "rollback.yml", "mongodb_fcv.yml"])
def test_the_playbooks_pass_the_syntax_check(name: str) -> None:
    run = ansible_playbook(f"playbooks/{name}", ROOT / "inventory" / "local", "--syntax-check")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


@pytest.mark.unit
def test_upgrade_rolls_mongodb_after_the_backup_and_before_the_stateless_layers() -> None:
    text = (ROOT / "playbooks" / "upgrade.yml").read_text(encoding="utf-8")
    plays = [play["name"] for play in yaml.safe_load(text)]
    in_order = [
        "Back up and verify before anything changes",
        "The new images",
        "MongoDB members and their roles in the replica set",
        "MongoDB secondaries, one member at a time",
        "MongoDB primary, after rs.stepDown()",
        "Rocket.Chat instances, one host at a time",
        "ERP API, one host at a time",
    ]
    assert [plays.index(name) for name in in_order] == sorted(plays.index(name) for name in in_order)
    assert "setFeatureCompatibilityVersion" not in text  # make mongodb-fcv's alone
