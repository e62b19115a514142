"""Figures for the security fixes of issue 12, measured on a real ERP server started here (SQLite).

    python -m security.bench_limits

Prints: audit rows written by 600 malformed anonymous POSTs; the server's RSS before and after six
clients each send a 50 MB header; how many of 200 idle sockets from one source the server keeps;
activation failure times for an unknown login and for a known login with a wrong code (medians).
Loopback only; bounded in count and time. A benchmark, not a test: it prints, it does not judge.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import statistics
import subprocess  # nosec B404
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603  # nosec B603
        [sys.executable, "-m", "erp", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    return done.stdout.strip()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _big_header(port: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            for _ in range(800):  # 50 MB
                sock.sendall(chunk)
    except OSError:
        pass


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="erp-bench-limits-"))
    db = state / "erp.sqlite3"
    port = _free_port()
    env = {
        **os.environ,
        "ERP_ENVIRONMENT": "test",
        "ERP_DATABASE_URL": f"sqlite:///{db}",
        "ERP_SECRET_KEY": secrets.token_urlsafe(32),
        "ERP_RATE_LIMIT_ACTIVATION_PER_MINUTE": "100000",
        "ERP_AUTH_FAILURE_LIMIT": "100000",
        "ERP_LOG_LEVEL": "WARNING",
    }
    _cli(env, "migrate")
    _cli(env, "seed-positions")
    key = _cli(env, "keys", "create", "--name", "bench", "--scope", "bot")
    server = subprocess.Popen(  # noqa: S603  # nosec B603
        [sys.executable, "-m", "erp", "serve", "--port", str(port)], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as client:
            rows = lambda: sqlite3.connect(db).execute("SELECT count(*) FROM audit_events").fetchone()[0]  # noqa: E731
            before = rows()
            for _ in range(600):
                client.post("/api/bot/v1/staff", content=b"{", headers={"Content-Type": "application/json"})
            print(f"audit rows written by 600 malformed anonymous POST /staff: {rows() - before}")

            body = {
                "full_name": "Бенчев Бенч", "email": "bench@example.com", "position_code": "ENG",
                "rocketchat_user_id": "bench1", "rocketchat_username": "bench",
            }  # fmt: skip
            made = client.post(
                "/api/bot/v1/staff", json=body, headers={"X-API-Key": key, "Idempotency-Key": "bench-1"}
            ).json()
            login, code = made["activation"]["login"], made["activation"]["code"]
            wrong = f"{(int(code) + 1) % 10**6:06d}"
            times: dict[str, list[float]] = {"unknown login": [], "known login, wrong code": []}
            for n in range(5):  # the known login's backoff starts after 5 failures
                for name, (user, attempt) in {
                    "unknown login": (f"nobody{n}.x", "123456"),
                    "known login, wrong code": (login, wrong),
                }.items():
                    started = time.perf_counter()
                    attempt_body = {"login": user, "code": attempt, "password": user[::-1]}
                    client.post("/api/v1/account/activate", json=attempt_body)
                    times[name].append((time.perf_counter() - started) * 1000)
            for name, values in times.items():
                print(f"activation failure, {name}: median {statistics.median(values):.0f} ms "
                      f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip

        print(f"server RSS before the big headers: {_rss_mb(server.pid):.0f} MB")
        threads = [threading.Thread(target=_big_header, args=(port,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        print(f"server RSS after six clients sent a 50 MB header each: {_rss_mb(server.pid):.0f} MB")

        held = []
        for _ in range(200):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(1.0)
        alive = 0
        for sock in held:
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        print(f"idle sockets from one source still open after 1 s: {alive} of {len(held)}")
        time.sleep(11)
        still = 0
        for sock in held:
            try:
                still += sock.recv(1) != b""
            except BlockingIOError:
                still += 1
            except OSError:
                pass
            sock.close()
        print(f"... after 12 s (head timeout 10 s): {still}")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
