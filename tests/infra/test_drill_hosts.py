"""The multi-host drills of a lab inventory (`make drill INVENTORY=inventory/lab`; never production:
playbooks/verify.yml refuses it): what only a deployment across several hosts can show, on the lab's own
hosts, from this machine (lab/drill_*.py, docs/lab.md):

- the ERP's own alerts from every ERP host, posted through the proxy into the admins group
  (lab/drill_erp_alerts.py);
- Rocket.Chat down and back on the chat host while an employee is in a dialog with the bot on the bot host:
  the bot reconnects across hosts, loses no answer, and BotRocketChatDisconnected from the monitoring host
  reaches the admins group once Rocket.Chat is back (lab/drill_rocketchat.py);
- an ERP host lost under a request loop through the proxy (lab/drill_host_loss.py: the lab host killed, so
  only a lab inventory whose hosts run here), with three host faults beside it
  (lab/drill_host_faults.py: a restart loop, a disk nearly full, the proxy's certificate about to expire,
  each on its own host, each alert in the admins group, each fault undone).

They skip for an inventory that is not a lab of this machine (inventory/local has the single-host drills
of tests/infra/test_drill_*.py). `python -m lab.multi`'s step `drill` is this command: each drill adds its
timings to the lab's state (lab/multi.py add_drill_figures), which the cycle reads into its summary.
"""

from __future__ import annotations

import pytest
from plugins.infra import verify_inventory

from lab import control, drill_erp_alerts, drill_host_faults, drill_host_loss, drill_rocketchat
from lab.multi import add_drill_figures
from lab.topology import Lab, LabConfigError, ansible_inventory, load

pytestmark = [pytest.mark.infra, pytest.mark.drill]


@pytest.fixture(scope="module")
def lab() -> Lab:
    try:
        found = load(verify_inventory())
    except LabConfigError as exc:
        pytest.skip(f"the multi-host drills run for a lab inventory only ({exc})")
    groups = ansible_inventory(found.inventory)
    shape = {"erp": 2, "monitoring": 1, "rocketchat": 1, "bots": 1, "db": 1, "proxy": 1}
    short = [f"{n} {g}" for g, n in shape.items() if len(groups.get(g, {}).get("hosts", [])) < n]
    if short:
        pytest.skip(
            f"the multi-host drills need at least {', '.join(short)} host(s) (the shape of inventory/lab)"
        )
    states = {name: state for name, state, _ in control.status(found)}
    stopped = sorted(
        found.container(host) for host in found.hosts if states.get(found.container(host)) != "running"
    )
    if stopped:
        pytest.fail(
            f"lab {found.name}: {', '.join(stopped)} not running: start the lab (make lab-up) and deploy"
        )
    return found


@pytest.mark.timeout(900)
def test_every_erp_host_posts_its_own_alert_through_the_proxy(lab: Lab) -> None:
    add_drill_figures(lab, drill_erp_alerts.run(lab))


@pytest.mark.timeout(1800)
def test_rocketchat_down_and_back_across_hosts_loses_no_answer(lab: Lab) -> None:
    add_drill_figures(lab, drill_rocketchat.run(lab))


@pytest.mark.timeout(3600)
def test_a_lost_erp_host_and_three_host_faults_each_reach_the_admins_group(lab: Lab) -> None:
    add_drill_figures(lab, drill_host_faults.around(lab, lambda: drill_host_loss.run(lab)))
