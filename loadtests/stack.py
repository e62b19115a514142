"""The local stack a load run starts when no TARGET is given: the Rocket.Chat simulator, the ERP and
the bot as real processes on loopback, started by the test suite's own launchers (tests/plugins).

Unlike the functional tests, the stack keeps production limits: the simulator's REST rate limiter is
on with Rocket.Chat's defaults (10 calls per minute per client address and route, as
roles/rocketchat_bootstrap deploys it), the ERP has its default rate limits, and the bot its default
per-user command limit.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# The ERP's own defaults (erp/settings.py), over the generous values the test launcher starts with.
ERP_PRODUCTION_LIMITS = {
    "ERP_RATE_LIMIT_KEY_PER_SECOND": "20",
    "ERP_RATE_LIMIT_KEY_BURST": "60",
    "ERP_RATE_LIMIT_IP_PER_SECOND": "20",
    "ERP_RATE_LIMIT_IP_BURST": "60",
    "ERP_RATE_LIMIT_ACTIVATION_PER_MINUTE": "10",
    "ERP_AUTH_FAILURE_LIMIT": "10",
}
BOT_PRODUCTION_LIMITS = {"BOT_RATE_LIMIT_PER_MINUTE": "20"}


def _plugins() -> Any:
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from plugins import bot, erp, processes, rocketchat

    return bot, erp, processes, rocketchat


@dataclass
class LocalStack:
    rocketchat_url: str
    erp_url: str
    admin_user: str
    admin_password: str
    bot_username: str
    admins_channel: str
    bot_metrics_url: str
    erp_metrics_url: str
    pids: dict[str, int]
    state_dir: Path
    _stoppers: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping a service failed: {exc}", file=sys.stderr)
        self._stoppers.clear()


def start_erp(state_dir: Path, workers: int) -> Any:
    """The ERP like plugins.erp.start_erp_server, with production limits and `workers` processes."""
    _bot, erp, processes, _rc = _plugins()
    if workers == 1:
        return erp.start_erp_server(state_dir, settings=ERP_PRODUCTION_LIMITS)
    import secrets

    state_dir.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    env = {
        **erp.TEST_SETTINGS,
        **ERP_PRODUCTION_LIMITS,
        "ERP_DATABASE_URL": f"sqlite:///{state_dir / 'erp.sqlite3'}",
        "ERP_SECRET_KEY": secrets.token_urlsafe(32),
    }
    erp.run_cli(env, "migrate")
    erp.run_cli(env, "seed-positions")
    bot_key = erp.run_cli(env, "keys", "create", "--name", "bot", "--scope", "bot").stdout.strip()
    admin_key = erp.run_cli(
        env, "keys", "create", "--name", "admin", "--scope", "bot", "--scope", "admin"
    ).stdout.strip()
    process = processes.ServiceProcess(
        "erp",
        ["-m", "erp", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_dir=state_dir,
    ).start(timeout=60)
    return erp.ErpServer(f"http://127.0.0.1:{port}", bot_key, admin_key, process, env, state_dir)


def start_local_stack(erp_workers: int = 1, state_dir: Path | None = None) -> LocalStack:
    bot, _erp, _processes, rocketchat = _plugins()
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="load-stack-"))
    rc = rocketchat.start_simulator(state_dir / "sim", "rocketchat-sim", {})
    stoppers: list[Any] = [rc.process.stop]
    stack: LocalStack | None = None
    try:
        erp_server = start_erp(state_dir / "erp", erp_workers)
        stoppers.append(erp_server.stop)
        _admin, bot_user, admins_channel = bot.prepare_workspace(rc)
        bot_process = bot.start_bot(
            rocketchat_url=rc.base_url,
            erp_url=erp_server.base_url,
            erp_key=erp_server.admin_key,
            bot_user=bot_user,
            state_dir=state_dir / "bot",
            extra_env={
                "BOT_ADMINS_CHANNEL": admins_channel,
                "BOT_LOG_LEVEL": "WARNING",
                **BOT_PRODUCTION_LIMITS,
            },
        )
        stoppers.append(bot_process.stop)
        stack = LocalStack(
            rocketchat_url=rc.base_url,
            erp_url=erp_server.base_url,
            admin_user=rc.admin_username,
            admin_password=rc.admin_password,
            bot_username=bot_user.username,
            admins_channel=admins_channel,
            bot_metrics_url=f"{bot_process.http_url}/metrics",
            erp_metrics_url=f"{erp_server.base_url}/metrics",
            pids={
                "simulator": rc.process.proc.pid,
                "ERP": erp_server.process.proc.pid,
                "bot": bot_process.process.proc.pid,
            },
            state_dir=state_dir,
            _stoppers=stoppers,
        )
        return stack
    finally:
        if stack is None:
            for stop in reversed(stoppers):
                stop()


def environment_for(stack: LocalStack) -> dict[str, str]:
    return {
        "LOAD_RC_ADMIN_USER": stack.admin_user,
        "LOAD_RC_ADMIN_PASSWORD": stack.admin_password,
        "LOAD_BOT_USERNAME": stack.bot_username,
        "LOAD_ADMINS_CHANNEL": stack.admins_channel,
        "LOAD_ERP_URL": stack.erp_url,
        "LOAD_BOT_METRICS_URL": stack.bot_metrics_url,
        "LOAD_ERP_METRICS_URL": stack.erp_metrics_url,
    }
