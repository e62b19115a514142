"""Benchmark: chat.postMessage throughput of the Rocket.Chat simulator fanned out to WebSocket subscribers.

Starts `python -m rocketchat_sim` on a free loopback port, opens SUBSCRIBERS DDP connections (in their
own process) subscribed to one channel's `stream-room-messages`, then posts MESSAGES messages through
chat.postMessage from PUBLISHERS separate processes (keep-alive HTTP/1.1, CONCURRENCY requests in flight
each). Prints messages/s = messages posted / time until every subscriber has received every message,
and, for a simulator it starts, the time until /api/info answers, its resident memory and the CPU time
it spent per message (the figure to compare across runs on a shared machine).

    python loadtests/bench_sim.py [--messages 5000] [--subscribers 100] [--publishers 2] [--concurrency 8]
    python loadtests/bench_sim.py --url http://127.0.0.1:3000 --user admin --password ...   # existing server

A run of a simulator it starts, at the documented sizes (>= 5000 messages to 100 subscribers) that
delivered every frame, appends its messages/s (bench.sim_fanout_msgs) and the load average before it
to .state/figures/bench.jsonl (`python -m ops.figures record` widens the docs' ranges with them);
--record records any run of a simulator it starts, --no-record none.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STALL_SECONDS = 30

from ops.figures import record_run  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident set size of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): less sensitive to a loaded machine
    than wall-clock throughput."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_simulator(password: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASS": password,
        "ADMIN_EMAIL": "admin@example.test",
        "SIM_LOG_LEVEL": "warning",
    }
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "rocketchat_sim"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/info", timeout=1).status_code == 200:
                print(f"startup:                   {time.monotonic() - started:.2f} s to answer /api/info")
                print(f"memory after startup:      {rss_mib(proc.pid):.0f} MiB RSS")
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("simulator did not start")


# ------------------------------------------------------------------ subscribers (own process)
def subscribers_main(
    ws_url: str, token: str, rid: str, count: int, expected: int, conn: mp.connection.Connection
) -> None:
    asyncio.run(_subscribers(ws_url, token, rid, count, expected, conn))


async def _subscribers(
    ws_url: str, token: str, rid: str, count: int, expected: int, conn: mp.connection.Connection
) -> None:
    """Raw-socket DDP subscribers: parse only WebSocket frame headers so the client is not the bottleneck."""
    parsed = urlparse(ws_url)
    received = [0] * count
    done = asyncio.Event()
    last = [0.0]

    def frame(text: str) -> bytes:
        # client frames must be masked (RFC 6455); a zero mask keeps the payload as is
        data = text.encode()
        n = len(data)
        head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        return head + b"\0\0\0\0" + data

    async def one(i: int, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        writer.write(frame(json.dumps({"msg": "connect", "version": "1", "support": ["1"]})))
        writer.write(
            frame(json.dumps({"msg": "method", "method": "login", "id": "1", "params": [{"resume": token}]}))
        )
        writer.write(
            frame(
                json.dumps({"msg": "sub", "id": "s1", "name": "stream-room-messages", "params": [rid, False]})
            )
        )
        buf = b""
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                return
            buf += chunk
            pos = 0
            while len(buf) - pos >= 2:
                n = buf[pos + 1] & 0x7F
                hdr = 2
                if n == 126:
                    if len(buf) - pos < 4:
                        break
                    n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                    hdr = 4
                elif n == 127:
                    if len(buf) - pos < 10:
                        break
                    n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    hdr = 10
                if len(buf) - pos < hdr + n:
                    break
                payload = buf[pos + hdr : pos + hdr + 24]
                pos += hdr + n
                if payload.startswith(b'{"msg":"changed"'):
                    received[i] += 1
                    if received[i] >= expected:
                        last[0] = time.time()
                        if all(r >= expected for r in received):
                            done.set()
                        writer.close()
                        return
                elif payload.startswith(b'{"msg":"ready"'):
                    ready.set()
            buf = buf[pos:]

    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(one(i, readies[i])) for i in range(count)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    conn.send("ready")
    # Wait until every subscriber has everything, at most 600 s and at most STALL_SECONDS without a
    # single new frame (a loaded machine must not hang the benchmark; the count then shows the loss).
    progress, stalled_since = 0, time.monotonic()
    deadline = time.monotonic() + 600
    while not done.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 1)
        if sum(received) != progress:
            progress, stalled_since = sum(received), time.monotonic()
        elif time.monotonic() - stalled_since > STALL_SECONDS:
            break
    conn.send({"last": last[0] or time.time(), "received": sum(received)})
    for task in tasks:
        task.cancel()


# ------------------------------------------------------------------ publishers (own processes)
def publisher_main(
    url: str, uid: str, token: str, rid: str, count: int, concurrency: int, start_at: float, out: mp.Queue
) -> None:
    out.put(asyncio.run(_publisher(url, uid, token, rid, count, concurrency, start_at)))


async def _publisher(
    url: str, uid: str, token: str, rid: str, count: int, concurrency: int, start_at: float
) -> dict[str, float]:
    parsed = urlparse(url)
    body = json.dumps({"roomId": rid, "text": "benchmark message"}).encode()
    request = (
        f"POST /api/v1/chat.postMessage HTTP/1.1\r\nHost: {parsed.netloc}\r\nX-User-Id: {uid}\r\n"
        f"X-Auth-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining = [count]
    errors = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        while remaining[0] > 0:
            remaining[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
        writer.close()

    await asyncio.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"started": started, "finished": time.time(), "errors": errors[0]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per publisher")
    parser.add_argument("--url", help="an already running simulator/Rocket.Chat (default: start one)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default=os.environ.get("BENCH_ADMIN_PASSWORD", ""))
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append the figure to .state/figures/bench.jsonl (default: a run at the documented sizes)",
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]

    proc = None
    password = args.password
    if args.url:
        url = args.url.rstrip("/")
    else:
        password = secrets.token_urlsafe(12)
        proc, url = start_simulator(password)
    try:
        login = httpx.post(
            f"{url}/api/v1/login", json={"user": args.user, "password": password}, timeout=10
        ).json()
        uid, token = login["data"]["userId"], login["data"]["authToken"]
        headers = {"X-User-Id": uid, "X-Auth-Token": token}
        name = f"bench-{secrets.token_hex(4)}"
        rid = httpx.post(
            f"{url}/api/v1/channels.create", headers=headers, json={"name": name}, timeout=10
        ).json()["channel"]["_id"]
        ws_url = url.replace("http://", "ws://") + "/websocket"

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        per_publisher = args.messages // args.publishers
        total = per_publisher * args.publishers
        sub = ctx.Process(target=subscribers_main, args=(ws_url, token, rid, args.subscribers, total, child))
        sub.start()
        if not parent.poll(90) or parent.recv() != "ready":
            raise SystemExit("subscribers did not get ready")
        results: mp.Queue = ctx.Queue()
        start_at = time.time() + 1.0
        pubs = [
            ctx.Process(
                target=publisher_main,
                args=(url, uid, token, rid, per_publisher, args.concurrency, start_at, results),
            )
            for _ in range(args.publishers)
        ]
        cpu_before = cpu_seconds(proc.pid) if proc is not None else 0.0
        for p in pubs:
            p.start()
        outcomes = [results.get(timeout=600) for _ in pubs]
        for p in pubs:
            p.join()
        delivered = parent.recv() if parent.poll(600) else {"last": 0.0, "received": 0}
        sub.join(10)
        first = min(o["started"] for o in outcomes)
        posted = max(o["finished"] for o in outcomes)
        errors = sum(int(o["errors"]) for o in outcomes)
        end = max(posted, delivered["last"])
        elapsed = end - first
        expected = total * args.subscribers
        print(f"messages posted:           {total} ({errors} non-200)")
        print(f"subscribers:               {args.subscribers}")
        print(f"frames delivered:          {delivered['received']} of {expected}")
        post_rate = total / (posted - first)
        print(f"post phase:                {posted - first:.2f} s  ({post_rate:.0f} chat.postMessage/s)")
        print(f"until all delivered:       {elapsed:.2f} s")
        print(f"RESULT messages/s fanned out to {args.subscribers} subscribers: {total / elapsed:.0f}")
        print(f"RESULT frames/s delivered: {delivered['received'] / elapsed:.0f}")
        if proc is not None:
            cpu = cpu_seconds(proc.pid) - cpu_before
            print(f"simulator CPU:             {cpu:.2f} s ({cpu / total * 1000:.2f} ms per message)")
            print(f"memory after the run:      {rss_mib(proc.pid):.0f} MiB RSS")
        ok = delivered["received"] == expected and errors == 0
        if proc is not None:  # the figure is the simulator's; a server given with --url is not recorded
            values = {"bench.sim_fanout_msgs": total / elapsed, "bench.load_average": load}
            documented = args.subscribers == 100 and total >= 5000
            print(record_run(values, documented=documented, ok=ok, wanted=args.record))
        return 0 if ok else 1
    finally:
        for child in mp.active_children():  # subscribers or publishers left behind by a failure
            child.terminate()
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
