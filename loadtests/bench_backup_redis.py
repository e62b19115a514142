"""Benchmark: the backup tool's Redis snapshot and restore (the bot's shared state, part `redis-rdb`).

Fills a real Redis with KEYS keys (the bot's key shapes: dialogs as JSON strings, seen message ids with
a TTL, a claims hash), then, RUNS times, runs the tool's own snapshot and restore path
(roles/backup/files/photomatrix-backup.py) and prints:

  * snapshot size (the RDB file the archive holds, before encryption);
  * snapshot time: REDIS_DUMP (redis-cli --rdb through the replication protocol) plus check_rdb (header,
    EOF opcode and the CRC-64 in Python), and check_rdb's share of it;
  * restore time: Redis stopped, REDIS_RESTORE (the snapshot as dump.rdb and the AOF's base), Redis
    started, up to the point where it serves the data again (DBSIZE answers KEYS; a sample of values
    and TTLs is checked after, untimed); with containers also until it is ready: its health check passes,
    run by the tool's start_all (what it waits for before it starts the bot replicas) when Docker has not
    run it yet (its first check is one 30 s interval after the start).

Between snapshot and restore the data moves on (a key deleted, one added), so a restore that brought
back nothing, or the wrong state, is seen; such a run fails with the difference (exit 1). No timing is
asserted: the figures are printed, with the range over the runs.

Two ways to run Redis:
  * `--redis container` (the default when photomatrix/redis:current exists here, never built by this
    script): a throw-away container of the stack's image, configured as the chatbot role configures it
    (roles/chatbot/tasks/redis.yml) with a volume on /data, port published on loopback for the probe;
    the tool's dump_redis (docker exec), stop, restore_redis (docker run on the volume) and docker
    start. The container and volume are named benchredis-<random> and removed afterwards.
  * `--redis local`: Debian's redis-server as a child process on loopback, the tool's REDIS_DUMP and
    REDIS_RESTORE shell scripts run here (as tests/backup/test_redis_state.py's unit tests do).

A run at the documented sizes (the container, 100,000 keys of ~200 B, maxmemory 64mb) appends each
snapshot-and-restore's figures (backup_redis.*, and the load average before it once) to
.state/figures/bench.jsonl; `python -m ops.figures record .state/figures/bench.jsonl` widens
docs/operations.md's table with them. --record records any run, --no-record none.

    python loadtests/bench_backup_redis.py [--keys 100000] [--value-bytes 200] [--runs 3]
        [--redis container|local] [--maxmemory 64mb] [--record | --no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from ops.figures import record_run  # noqa: E402

TOOL = ROOT / "roles" / "backup" / "files" / "photomatrix-backup.py"
IMAGE = "photomatrix/redis:current"
REDIS_UID = 991  # images/redis/Dockerfile: the redis user's fixed uid
SAMPLE = 200  # keys read back after each restore


def load_tool() -> ModuleType:
    """The backup tool (a script, not a package) as a module."""
    spec = importlib.util.spec_from_file_location("photomatrix_backup_bench", TOOL)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {TOOL}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def role_conf(password: str, data: str, port: int, maxmemory: str, bind: str) -> str:
    """Redis' configuration as the chatbot role writes it (roles/chatbot/tasks/redis.yml)."""
    return (
        f"bind {bind}\nport {port}\nprotected-mode yes\nrequirepass {password}\ndir {data}\n"
        f'appendonly yes\nappendfsync everysec\nsave ""\nmaxmemory {maxmemory}\n'
        'maxmemory-policy noeviction\nrename-command CONFIG ""\nrename-command DEBUG ""\nlogfile ""\n'
        "loglevel notice\n"
    )


# ---------------------------------------------------------------- the two kinds of Redis


@dataclass
class Redis:
    """A Redis the benchmark drives: its client, how to snapshot, stop, restore and start it."""

    password: str
    port: int
    workdir: Path
    extra: dict[str, float] = field(default_factory=dict)  # per-run figures beyond the common ones

    def client(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=timeout,
            decode_responses=True,
        )

    def snapshot(self, out: Path) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restore(self, rdb: Path) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def after_serving(self, started: float) -> None:
        """Anything measured after Redis serves again (container: until its health check passes)."""


class LocalRedis(Redis):
    """Debian's redis-server as a child process; the tool's shell scripts run on this host."""

    def __init__(self, workdir: Path, maxmemory: str) -> None:
        super().__init__(secrets.token_hex(20), free_port(), workdir)
        self.data = workdir / "data"
        self.data.mkdir()
        self.conf = workdir / "redis.conf"
        self.conf.write_text(role_conf(self.password, str(self.data), self.port, maxmemory, "127.0.0.1"))
        self.conf.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    def snapshot(self, out: Path) -> None:
        tmp = self.data / ".photomatrix-backup.rdb"
        with open(out, "wb") as f:
            tool.run(
                ["sh", "-c", tool.REDIS_DUMP, "sh", str(self.conf), str(tmp), str(self.port), "600"],
                stdin=subprocess.DEVNULL,
                stdout=f,
                timeout=660,
                what="redis snapshot",
            )

    def restore(self, rdb: Path) -> None:
        settings = tool.parse_redis_conf(self.conf.read_text())
        with open(rdb, "rb") as f:
            tool.run(
                ["sh", "-c", tool.REDIS_RESTORE, "sh", settings.dir, settings.dbfilename,
                 settings.appenddirname, settings.appendfilename],
                stdin=f, timeout=300, what="redis restore",
            )  # fmt: skip


class ContainerRedis(Redis):
    """A container of the stack's Redis image as the chatbot role runs it; the tool's own functions."""

    def __init__(self, workdir: Path, maxmemory: str) -> None:
        super().__init__(secrets.token_hex(20), free_port(), workdir)
        tag = secrets.token_hex(4)
        # Not photomatrix-* or pm*: those names belong to the stack and the labs.
        self.name, self.volume = f"benchredis-{tag}", f"benchredis-data-{tag}"
        self.conf = workdir / "redis.conf"
        # Inside the container on all its interfaces, as the role has it; published on loopback only.
        everywhere = "0.0.0.0"  # noqa: S104  # nosec B104
        self.conf.write_text(role_conf(self.password, "/data", 6379, maxmemory, everywhere))
        os.chown(self.conf, REDIS_UID, REDIS_UID)
        self.conf.chmod(0o600)
        key = workdir / "backup.key"
        key.write_text(secrets.token_hex(32))
        key.chmod(0o600)
        self.config = tool.Config(
            backup_dir=workdir / "backups",
            key_file=key,
            root=workdir,
            file_paths=[],
            containers={"bot": "unused", "redis": self.name},
            components=["bot"],
            bot_state_path="/var/lib/bot/bot.sqlite3",
            start_order=[self.name],
            health_timeout=300,
            command_timeout=900,
        )
        # A network of its own: the default bridge may be absent where other engines share the machine.
        tool.run(["docker", "network", "create", self.name], timeout=60, what="docker network create")
        try:
            self._run_container()
        except Exception:
            self.remove()
            raise

    def _run_container(self) -> None:
        tool.run(["docker", "run", "-d", "--name", self.name, "--network", self.name, "--read-only",
             "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
             "-p", f"127.0.0.1:{self.port}:6379",
             "--mount", f"type=volume,source={self.volume},target=/data",
             "--mount", f"type=bind,source={self.conf},target=/etc/redis/redis.conf,readonly",
             IMAGE], timeout=300, what="docker run")  # fmt: skip

    def info(self) -> dict:
        info = tool.inspect(self.name)
        if info is None:
            raise RuntimeError(f"{self.name} is gone")
        return info

    def snapshot(self, out: Path) -> None:
        tool.dump_redis(self.config, self.info(), out)  # docker exec REDIS_DUMP, then check_rdb

    def stop(self) -> None:
        tool.stop(self.name)

    def restore(self, rdb: Path) -> None:
        tool.restore_redis(self.config, self.info(), rdb)  # docker run REDIS_RESTORE on the volume

    def start(self) -> None:
        tool.run(["docker", "start", self.name], timeout=120, what="docker start")

    def after_serving(self, started: float) -> None:
        deadline = time.monotonic() + 300
        while not tool.ready(self.name, self.info()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} is not ready 300 s after its start")
            time.sleep(0.25)
        self.extra["ready_s"] = time.monotonic() - started

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=120, check=False)
        subprocess.run(
            ["docker", "volume", "rm", "-f", self.volume], capture_output=True, timeout=120, check=False
        )
        subprocess.run(["docker", "network", "rm", self.name], capture_output=True, timeout=60, check=False)


@contextlib.contextmanager
def redis_of_kind(kind: str, workdir: Path, maxmemory: str) -> Iterator[Redis]:
    if kind == "local":
        server: Redis = LocalRedis(workdir, maxmemory)
        try:
            server.start()
            yield server
        finally:
            server.stop()
        return
    container = ContainerRedis(workdir, maxmemory)
    try:
        yield container
    finally:
        container.remove()


# ---------------------------------------------------------------- data


def fill(client: redis.Redis, keys: int, value_bytes: int) -> dict[str, tuple[str, bool]]:
    """KEYS keys in the bot's shapes (3 in 4 dialog JSON strings, 1 in 4 seen ids with a day's TTL),
    and a claims hash; returns a sample of them: key -> (value, has a TTL)."""
    rng = random.Random(7)
    sample_at = set(rng.sample(range(keys), min(SAMPLE, keys)))
    sample: dict[str, tuple[str, bool]] = {}
    pipe = client.pipeline(transaction=False)
    for n in range(keys):
        if n % 4 == 3:
            key, value, ttl = f"rcbot:seen:m{n}", "1", True
        else:
            pad = secrets.token_hex(max(value_bytes - 60, 2) // 2)
            key, value, ttl = (
                f"rcbot:dialog:u{n}",
                json.dumps({"step": "position", "name": f"user {n}", "pad": pad}),
                False,
            )
        pipe.set(key, value, ex=86400 if ttl else None)
        if n in sample_at:
            sample[key] = (value, ttl)
        if n % 1000 == 999:
            pipe.execute()
    pipe.hset("rcbot:claims", mapping={f"m{n}": "replica-1" for n in range(100)})
    pipe.execute()
    return sample


def wait_serving(server: Redis, expected: int) -> None:
    """Until Redis answers with the restored data: DBSIZE is `expected` (no longer LOADING)."""
    deadline = time.monotonic() + 600
    while True:
        try:
            with server.client(timeout=2.0) as client:
                if client.dbsize() == expected:
                    break
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Redis does not serve the restored data 600 s after its start")
        time.sleep(0.02)


def check_restored(server: Redis, expected: int, sample: dict[str, tuple[str, bool]]) -> list[str]:
    problems = []
    with server.client() as client:
        if client.dbsize() != expected:
            problems.append(f"DBSIZE {client.dbsize()}, expected {expected}")
        pipe = client.pipeline(transaction=False)
        for key in sample:
            pipe.get(key)
            pipe.ttl(key)
        answers = pipe.execute()
        for (key, (value, has_ttl)), got, ttl in zip(
            sample.items(), answers[::2], answers[1::2], strict=True
        ):
            if got != value or (ttl > 0) != has_ttl:
                problems.append(f"{key}: {got!r} ttl {ttl}")
                break
        if client.exists("bench:after-snapshot"):
            problems.append("a key written after the snapshot survived the restore")
    return problems


# ---------------------------------------------------------------- one run


def timed(step: Callable[[], object]) -> float:
    started = time.monotonic()
    step()
    return time.monotonic() - started


def one_run(
    server: Redis, workdir: Path, expected: int, sample: dict[str, tuple[str, bool]]
) -> dict[str, float]:
    rdb = workdir / "bot-redis.rdb"
    rdb.unlink(missing_ok=True)
    figures = {"snapshot_s": timed(lambda: server.snapshot(rdb))}
    if isinstance(server, LocalRedis):  # the container path's dump_redis checks it itself
        figures["snapshot_s"] += timed(lambda: tool.check_rdb(rdb))
    figures["check_rdb_s"] = timed(lambda: tool.check_rdb(rdb))  # its share (timed once more on its own)
    figures["size_mib"] = rdb.stat().st_size / 2**20
    with server.client() as client:  # the state moves on after the backup
        client.delete(next(iter(sample)))
        client.set("bench:after-snapshot", "later")
    server.extra.clear()
    started = time.monotonic()
    figures["stop_s"] = timed(server.stop)
    figures["write_s"] = timed(lambda: server.restore(rdb))
    up = time.monotonic()
    server.start()
    wait_serving(server, expected)
    figures["load_s"] = time.monotonic() - up
    figures["restore_s"] = time.monotonic() - started
    server.after_serving(up)
    figures.update(server.extra)
    problems = check_restored(server, expected, sample)
    if problems:
        raise RuntimeError("the restore did not bring the snapshot back: " + "; ".join(problems))
    return figures


LABELS = {
    "size_mib": ("snapshot size", "MiB", 1),
    "snapshot_s": ("snapshot time (REDIS_DUMP + check_rdb)", "s", 2),
    "check_rdb_s": ("  of which check_rdb (CRC-64 in Python)", "s", 2),
    "restore_s": ("restore time (stop to serving again)", "s", 2),
    "stop_s": ("  stop Redis", "s", 2),
    "write_s": ("  REDIS_RESTORE (into the data directory)", "s", 2),
    "load_s": ("  start until the data is served", "s", 2),
    "ready_s": ("  start until ready (its health check passes)", "s", 1),
}


def run_figures(runs: list[dict[str, float]], load: float) -> list[dict[str, float]]:
    """The docs' figures (ops/figures.json, backup_redis.*) of each snapshot and restore; the load
    average before the benchmark with the first (one value per benchmark, not per run)."""
    figures = [{f"backup_redis.{key}": value for key, value in run.items() if key in LABELS} for run in runs]
    if figures:
        figures[0]["backup_redis.load_average"] = load
    return figures


def documented(args: argparse.Namespace, kind: str) -> bool:
    """The sizes docs/operations.md's figures are for."""
    sizes = (args.keys, args.value_bytes, args.maxmemory)
    return kind == "container" and sizes == (100_000, 200, "64mb")


def report(runs: list[dict[str, float]]) -> None:
    for key, (label, unit, decimals) in LABELS.items():
        values = [run[key] for run in runs if key in run]
        if not values:
            continue
        each = ", ".join(f"{v:.{decimals}f}" for v in values)
        spread = f"{min(values):.{decimals}f}–{max(values):.{decimals}f}" if len(values) > 1 else each
        median = statistics.median(values)
        print(f"{label:<46} {spread:>13} {unit}   (runs: {each}; median {median:.{decimals}f})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=200, help="approximate size of a dialog value")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", choices=["container", "local"], default=None)
    parser.add_argument("--maxmemory", default="64mb", help="Redis maxmemory (the chatbot role's default)")
    parser.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=None,
        help="append the figures to .state/figures/bench.jsonl (default: a run at the documented sizes)",
    )  # fmt: skip
    args = parser.parse_args()
    kind = args.redis
    if kind is None:
        has_image = (
            shutil.which("docker")
            and not subprocess.run(
                ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=60, check=False
            ).returncode
        )
        kind = "container" if has_image else "local"
    if kind == "local" and not shutil.which("redis-server"):
        print("redis-server is not installed (Debian package redis-server)", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-backup-redis-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # the container's redis user reads the mounted configuration below it
        with redis_of_kind(kind, workdir, args.maxmemory) as server:
            wait_serving(server, 0)
            started = time.monotonic()
            with server.client() as client:
                sample = fill(client, args.keys, args.value_bytes)
                expected = client.dbsize()
                memory = client.info("memory")["used_memory"] / 2**20
            print(
                f"Redis: {kind} ({IMAGE if kind == 'container' else 'Debian redis-server'}), {expected} keys "
                f"(~{args.value_bytes} B dialog values), {memory:.1f} MiB used, filled in "
                f"{time.monotonic() - started:.1f} s; load average before: {load:.2f}; {os.cpu_count()} CPUs"
            )
            runs = []
            for n in range(args.runs):
                figures = one_run(server, workdir, expected, sample)
                runs.append(figures)
                print(
                    f"run {n + 1}: " + ", ".join(f"{key} {value:.2f}" for key, value in figures.items()),
                    flush=True,
                )
    report(runs)
    at_sizes = documented(args, kind)
    said = [record_run(f, documented=at_sizes, wanted=args.record) for f in run_figures(runs, load)]
    for line in dict.fromkeys(said):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
