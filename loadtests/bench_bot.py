"""Benchmark of the onboarding bot through the Rocket.Chat simulator, everything as real processes.

Starts the simulator, the ERP API and one bot process on loopback, then measures, as users see it, the
time from a user's message (REST chat.sendMessage) to the bot's reply arriving on that user's realtime
stream (`__my_messages__`):

  * `status` round trip p50 / p99 (sequential, one user);
  * commands per second with many users in a closed loop;
  * one full registration dialog: the sum of round trips and the bot's own handling time;
  * the bot's RSS (current and peak), with 10,000 employees known to its store (language preferences and
    handled message ids) and 500 open registration dialogs, written into the store before the bot starts
    (`--known-employees`, `--open-dialogs`; issue 17: <= 80 MB).

  * webhook mode (`--webhook-seconds`, 0 skips it): `status` commands POSTed to the webhook endpoint as
    Rocket.Chat's outgoing webhook does, first to one replica, then round-robin to two replicas sharing
    a throwaway redis-server's state (as behind the proxy): commands/s and CPU per command of each.

Targets (issue 17, ratios in the same run): bot CPU per `status` <= the ERP's; RSS <= 80 MB.
Usage: python loadtests/bench_bot.py [--sequential 300] [--users 20] [--seconds 10]
       [--known-employees 10000] [--open-dialogs 500] [--webhook-seconds 10] [--[no-]record]

A run at the documented sizes (the defaults, or longer) appends its figures (the bot's CPU per command
over the ERP's, commands/s of one bot process's CPU, the webhook replicas' speed-up, the load average
before it) to .state/figures/bench.jsonl; `python -m ops.figures record .state/figures/bench.jsonl`
widens the docs' ranges with them. --record records any run, --no-record none.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from plugins.bot import BOT_SIM_SETTINGS, RocketChatAdmin, prepare_workspace, start_bot  # noqa: E402
from plugins.erp import start_erp_server  # noqa: E402
from plugins.processes import free_port  # noqa: E402
from plugins.rocketchat import start_simulator  # noqa: E402

from bot.core.dialog import Dialog  # noqa: E402
from bot.i18n import PERSON_LANG_KEY  # noqa: E402
from bot.store import SqliteStore  # noqa: E402
from bot.transport.ddp import DdpClient  # noqa: E402
from ops.figures import record_run  # noqa: E402

WEBHOOK_TOKEN = "bench-webhook-" + uuid.uuid4().hex


class StreamUser:
    """A chat user: sends over REST, receives the bot's replies on its own DDP stream."""

    def __init__(self, base_url: str, ws_url: str, user, bot_user_id: str, room: str) -> None:
        self.user, self.bot_user_id, self.room, self.ws_url = user, bot_user_id, room, ws_url
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=10, headers={"X-User-Id": user.user_id, "X-Auth-Token": user.token}
        )
        self.replies: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        self.ddp = DdpClient(ws_url)

    async def start(self) -> None:
        self.ddp.on_changed = self._changed
        await self.ddp.connect()
        await self.ddp.login_resume(self.user.token)
        await self.ddp.subscribe(
            "stream-room-messages", "__my_messages__", {"useCollection": False, "args": []}
        )

    def _changed(self, collection: str, fields: dict) -> None:
        args = fields.get("args") or []
        if fields.get("eventName") != "__my_messages__" or not args:
            return
        message = args[0]
        from_bot = message.get("u", {}).get("_id") == self.bot_user_id
        if message.get("rid") == self.room and from_bot and not message.get("editedAt"):
            self.replies.put_nowait((time.perf_counter(), message.get("msg", "")))

    async def round_trip(self, text: str) -> tuple[float, str]:
        while not self.replies.empty():
            self.replies.get_nowait()
        started = time.perf_counter()
        body = {"message": {"_id": uuid.uuid4().hex[:17], "rid": self.room, "msg": text}}
        response = await self.http.post("/api/v1/chat.sendMessage", json=body)
        response.raise_for_status()
        arrived, reply = await asyncio.wait_for(self.replies.get(), timeout=10)
        return arrived - started, reply

    async def close(self) -> None:
        await self.ddp.close()
        await self.http.aclose()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, peak


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def seed_store(path: Path, employees: int, dialogs: int) -> None:
    """What a big company leaves in the bot's store: people's languages, handled ids, open dialogs."""
    store = SqliteStore(str(path))
    await store.open()
    positions = [
        {"code": f"P{i}", "name": f"Position {i}", "requires_approval": i % 2 == 0} for i in range(12)
    ]
    for i in range(dialogs):
        dialog = Dialog(
            user_id=f"seed-user-{i}",
            username=f"seed.user{i}",
            room_id=f"seed-room-{i}",
            lang="ru",
            expires_at=time.time() + 3600,
            step="email",
            full_name="Петров Иван",
            position_code="P1",
            positions=positions,
        )
        await store.put_dialog(dialog.user_id, dialog.to_dict(), dialog.expires_at)
    now = time.time()
    await store._run(  # one transaction for the bulk rows
        lambda: store.db.executemany(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
            [(f"{PERSON_LANG_KEY}seed.user{i}", "ru" if i % 3 else "en") for i in range(employees)],
        )
    )
    await store._run(
        lambda: store.db.executemany(
            "INSERT OR IGNORE INTO seen (message_id, at) VALUES (?, ?)",
            [(f"seed-message-{i}", now) for i in range(employees)],
        )
    )
    await store.close()


def bot_seconds(metrics: str, command: str) -> float:
    match = re.search(rf'bot_command_seconds_sum\{{command="{command}"\}} ([0-9.e+-]+)', metrics)
    return float(match.group(1)) if match else 0.0


async def bench(
    args: argparse.Namespace,
    base_url: str,
    admin: RocketChatAdmin,
    bot,
    pids: dict[str, int],
    webhook_bots: list,
) -> dict[str, float]:
    """Runs the phases, prints their figures and returns the docs' (ops/figures.json keys)."""
    ws_url = base_url.replace("http://", "ws://") + "/websocket"

    async def make_user(prefix: str) -> StreamUser:
        user = await asyncio.to_thread(admin.create_user, f"{prefix}-{uuid.uuid4().hex[:8]}")
        room = await asyncio.to_thread(user.dm_room, bot.username)
        stream_user = StreamUser(base_url, ws_url, user, bot.user_id, room)
        await stream_user.start()
        return stream_user

    # 1. Sequential `status` round trips (after a short warm-up).
    single = await make_user("seq")
    for _ in range(20):
        await single.round_trip("status")
    latencies = [(await single.round_trip("status"))[0] * 1000 for _ in range(args.sequential)]
    print(
        f"status round trip, sequential x{len(latencies)}: p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms, mean {statistics.mean(latencies):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )

    # 2. Throughput: many users, each in a closed loop.
    users = [await make_user("load") for _ in range(args.users)]
    done = 0
    load_latencies: list[float] = []
    stop_at = time.perf_counter() + args.seconds

    async def loop(user: StreamUser) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            elapsed, _ = await user.round_trip("status")
            load_latencies.append(elapsed * 1000)
            done += 1

    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(loop(u) for u in users))
    wall = time.perf_counter() - started
    cpu = {name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / max(done, 1) for name, pid in pids.items()}
    cpu["load client"] = (time.process_time() - client_before) * 1000 / max(done, 1)
    print(
        f"throughput, {args.users} users x {args.seconds:.0f} s: {done / wall:.0f} commands/s "
        f"(p50 {percentile(load_latencies, 50):.1f} ms, p99 {percentile(load_latencies, 99):.1f} ms loaded)"
    )
    print(
        "CPU per command: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items())
        + f" (the bot alone would sustain ~{1000 / max(cpu['bot'], 0.001):.0f} commands/s on one core; "
        f"{os.cpu_count()} cores shared by all processes)"
    )
    figures = {"bench.bot_commands_per_cpu_second": 1000 / max(cpu["bot"], 0.001)}
    if cpu["ERP"] > 0:  # clock ticks: a very short run may see none
        figures["bench.bot_cpu_per_command_vs_erp"] = cpu["bot"] / cpu["ERP"]

    # 3. One full registration dialog.
    async with httpx.AsyncClient(timeout=10) as http:
        before = bot_seconds((await http.get(f"{bot.http_url}/metrics")).text, "register")
    dialog_user = await make_user("reg")
    dialog_cpu_before = cpu_seconds(pids["bot"])
    answers = ["регистрация", "Петров Иван", "ENG", f"{dialog_user.user.username}@example.com", "-", "да"]
    trips = []
    for text in answers:
        elapsed, reply = await dialog_user.round_trip(text)
        trips.append(elapsed * 1000)
    assert "Код активации" in reply, reply
    async with httpx.AsyncClient(timeout=10) as http:
        after = bot_seconds((await http.get(f"{bot.http_url}/metrics")).text, "register")
    bot_time = (after - before) * 1000
    dialog_cpu = (cpu_seconds(pids["bot"]) - dialog_cpu_before) * 1000
    print(
        f"registration dialog ({len(answers)} messages): round trips total {sum(trips):.0f} ms "
        f"(steps {', '.join(f'{t:.0f}' for t in trips)} ms); bot handling time {bot_time:.0f} ms, "
        f"bot CPU {dialog_cpu:.0f} ms"
    )

    # 4. Webhook mode: one replica, then two behind a round-robin balancer (as the proxy would be).
    if args.webhook_seconds > 0:
        speedup = await bench_webhook(args, admin, bot, webhook_bots)
        if speedup is not None:
            figures["bench.bot_webhook_2_replicas_speedup"] = speedup

    rss, peak = rss_mb(bot.process.proc.pid)
    print(
        f"bot RSS: {rss:.0f} MB now, {peak:.0f} MB peak "
        f"({args.known_employees} employees known to the store, "
        f"{args.open_dialogs} open dialogs)"
    )
    for user in [single, dialog_user, *users]:
        await user.close()
    return figures


async def webhook_round(
    http: httpx.AsyncClient, targets: list[str], people: list, seconds: float, *, once: bool = False
) -> tuple[int, float, list[float]]:
    """Each person in a closed loop; the POSTs go round-robin over the targets, as a balancer would."""
    done, latencies = 0, []
    stop_at = time.perf_counter() + seconds

    async def loop(turn: int, user, room: str) -> None:
        nonlocal done
        while once or time.perf_counter() < stop_at:
            payload = {
                "token": WEBHOOK_TOKEN,
                "bot": False,
                "channel_id": room,
                "message_id": uuid.uuid4().hex[:17],
                "user_id": user.user_id,
                "user_name": user.username,
                "text": "status",
            }
            started = time.perf_counter()
            response = await http.post(targets[turn % len(targets)], json=payload)
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            done += 1
            turn += 1
            if once:
                return

    started = time.perf_counter()
    await asyncio.gather(*(loop(i, user, room) for i, (user, room) in enumerate(people)))
    return done, time.perf_counter() - started, latencies


async def bench_webhook(
    args: argparse.Namespace, admin: RocketChatAdmin, bot, replicas: list
) -> float | None:
    """Closed-loop `status` commands POSTed as Rocket.Chat's outgoing webhook would; the replica answers
    over REST before it answers the POST, so the POST's end is the command's end. Returns 2 replicas'
    commands/s over 1 replica's (None: skipped)."""
    if not replicas:
        print("webhook mode: skipped (redis-server is not installed: Debian package redis-server)")
        return None
    people = []
    for _ in range(args.users):
        user = await asyncio.to_thread(admin.create_user, f"hook-{uuid.uuid4().hex[:8]}")
        people.append((user, await asyncio.to_thread(user.dm_room, bot.username)))
    rates = []
    async with httpx.AsyncClient(timeout=10) as http:
        for replica in replicas:  # warm-up: every person once on every replica (role lookups cached)
            await webhook_round(http, [f"{replica.http_url}/webhook"], people, 0.0, once=True)
        for count in (1, 2):
            targets = [f"{r.http_url}/webhook" for r in replicas[:count]]
            pids = {f"replica {i + 1}": r.process.proc.pid for i, r in enumerate(replicas[:count])}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            done, wall, latencies = await webhook_round(http, targets, people, args.webhook_seconds)
            cpu = {n: (cpu_seconds(pid) - cpu_before[n]) * 1000 / max(done, 1) for n, pid in pids.items()}
            rates.append(done / wall)
            print(
                f"webhook mode, {count} replica{'s' if count > 1 else ''} (shared Redis state), "
                f"{args.users} users x {args.webhook_seconds:.0f} s: {done / wall:.0f} commands/s "
                f"(p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms; "
                "CPU per command: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items()) + ")"
            )
    speedup = rates[1] / max(rates[0], 0.001)
    print(f"webhook mode: 2 replicas / 1 replica = {speedup:.2f}x commands/s")
    return speedup


def start_redis(state: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """A throwaway redis-server on a free loopback port, its files in `state` (never the system one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    (state / "redis").mkdir()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(state / "redis")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def documented(args: argparse.Namespace) -> bool:
    """The sizes the docs' figures are for: the defaults (longer phases and more round trips too)."""
    return (
        args.users == 20
        and args.seconds >= 10
        and args.sequential >= 300
        and args.known_employees == 10_000
        and args.open_dialogs == 500
        and args.webhook_seconds >= 10
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--known-employees", type=int, default=10_000)
    parser.add_argument("--open-dialogs", type=int, default=500)
    parser.add_argument("--webhook-seconds", type=float, default=10.0, help="0 skips the webhook phase")
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append the figures to .state/figures/bench.jsonl (default: a run at the documented sizes)",
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as tmp:
        state = Path(tmp)
        rc = start_simulator(state, "rocketchat-sim", {**BOT_SIM_SETTINGS, "SIM_LOG_LEVEL": "warning"})
        base_url, sim = rc.base_url, rc.process
        erp = bot = redis = None
        webhook_bots: list = []
        try:
            erp = start_erp_server(state / "erp", settings={"ERP_LOG_LEVEL": "WARNING"})
            admin, bot_user, admins_channel = prepare_workspace(rc)
            (state / "bot").mkdir()
            asyncio.run(seed_store(state / "bot" / "bot.sqlite3", args.known_employees, args.open_dialogs))
            bot = start_bot(
                rocketchat_url=base_url,
                erp_url=erp.base_url,
                erp_key=erp.admin_key,
                bot_user=bot_user,
                state_dir=state / "bot",
                extra_env={
                    "BOT_LOG_LEVEL": "WARNING",
                    "BOT_RATE_LIMIT_PER_MINUTE": "100000",
                    "BOT_ADMINS_CHANNEL": admins_channel,
                },
            )
            print(f"simulator {base_url}, ERP {erp.base_url}, bot {bot.http_url} (one process each)")
            pids = {"bot": bot.process.proc.pid, "simulator": sim.proc.pid, "ERP": erp.process.proc.pid}
            started_redis = start_redis(state) if args.webhook_seconds > 0 else None
            if started_redis is not None:
                redis, redis_url = started_redis
                for i in range(2):
                    webhook_bots.append(
                        start_bot(
                            rocketchat_url=base_url,
                            erp_url=erp.base_url,
                            erp_key=erp.admin_key,
                            bot_user=bot_user,
                            state_dir=state / f"webhook{i + 1}",
                            name=f"bot-webhook{i + 1}",
                            extra_env={
                                "BOT_MODE": "webhook",
                                "BOT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
                                "BOT_STATE_URL": redis_url,
                                "BOT_LOG_LEVEL": "WARNING",
                                "BOT_RATE_LIMIT_PER_MINUTE": "100000",
                                "BOT_ADMINS_CHANNEL": admins_channel,
                            },
                        )
                    )
            figures = asyncio.run(bench(args, base_url, admin, bot, pids, webhook_bots))
            figures["bench.load_average"] = load
            print(record_run(figures, documented=documented(args), wanted=args.record))
        finally:
            for part in (bot, *webhook_bots, erp, sim):
                if part is not None:
                    part.stop()
            if redis is not None:
                redis.terminate()
                redis.wait(10)


if __name__ == "__main__":
    main()
