"""lab.multi reads Ansible's PLAY RECAP to tell a failed deploy and a second run that changed something."""

from __future__ import annotations

import pytest

from lab.multi import recap, summary

pytestmark = pytest.mark.unit

OUTPUT = """
PLAY [Docker Engine and images] ************************************************
TASK [Gathering Facts] *********************************************************
ok: [edge]

PLAY RECAP *********************************************************************
edge                       : ok=10   changed=3    unreachable=0    failed=0    skipped=2
erp1                       : ok=12   changed=0    unreachable=1    failed=0    skipped=4

PLAY [Summary] *****************************************************************

PLAY RECAP *********************************************************************
edge                       : ok=140  changed=0    unreachable=0    failed=0    skipped=60
mongo1                     : ok=40   changed=2    unreachable=0    failed=1    skipped=9
"""


def test_the_last_recap_counts_per_host() -> None:
    assert recap(OUTPUT) == {
        "edge": {"changed": 0, "unreachable": 0, "failed": 0},
        "mongo1": {"changed": 2, "unreachable": 0, "failed": 1},
    }


def test_no_recap_is_no_hosts() -> None:
    assert recap("ERROR! the playbook could not be found") == {}


def test_each_step_is_reported_with_the_load_beside_it() -> None:
    lines = summary({"lab up": (78.4, 12.91), "site.yml again (changed=0)": (301.0, 3.0)})
    assert lines[0].split() == ["lab", "up", "78", "s", "(load", "12.9)"]
    assert lines[1].endswith("301 s  (load 3.0)")
