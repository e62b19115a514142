"""Leadership between replicas: one lease in the shared state store, held by one replica at a time.

The leader runs what must happen once: in realtime mode the Rocket.Chat stream (the other replicas stand
by), and in both modes the periodic jobs (expired dialog notices, the approval watch). A replica takes
the lease when it is free, renews it every `ttl / 3` seconds, and steps down as soon as a renewal fails
or cannot be confirmed before its lease would run out, so two replicas never lead at once for longer
than the store's clock lets them. A standby tries every `ttl / 3` seconds, so it takes over at most
`ttl + ttl / 3` seconds after the leader died (a clean stop gives the lease back at once).

With the SQLite store (one host, one replica) the lease is always free: the one replica leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from bot import metrics
from bot.store import Store

log = logging.getLogger("bot.leader")
LEASE_KEY = "leader"


def replica_id() -> str:
    """Unique per process: host, pid and a random part (a restarted container reuses pid 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    def __init__(self, store: Store, *, ttl: float = 6.0, holder: str | None = None) -> None:
        if ttl < 1.5:
            raise ValueError("the lease must last at least 1.5 s")
        self.store, self.ttl = store, ttl
        self.holder = holder or replica_id()
        self.interval = ttl / 3
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._valid_until = 0.0  # monotonic time until which the last confirmed lease runs

    async def run(self) -> None:
        """Keep trying to lead, renew while leading; returns after `stop()`."""
        metrics.LEADER.set(0)
        while not self._stopping.is_set():
            asked = time.monotonic()
            try:
                asking = self.store.hold(LEASE_KEY, self.holder, self.ttl)
                held = await asyncio.wait_for(asking, self.interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                held = None
                log.warning("lease check failed", extra={"reason": f"{type(exc).__name__}"[:200]})
            if held:
                self._valid_until = asked + self.ttl
                if not self.leading.is_set():
                    self.lost.clear()
                    self.leading.set()
                    metrics.LEADER.set(1)
                    log.info("leading", extra={"replica": self.holder})
            elif self.leading.is_set() and (
                held is False or time.monotonic() > self._valid_until - self.interval
            ):
                self._step_down("lease lost" if held is False else "lease not confirmed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)

    def _step_down(self, reason: str) -> None:
        self.leading.clear()
        self.lost.set()
        metrics.LEADER.set(0)
        log.warning("standing by", extra={"replica": self.holder, "reason": reason})

    async def stop(self) -> None:
        """Stop trying; give the lease back if held, so a standby takes over without waiting."""
        self._stopping.set()
        if self.leading.is_set():
            self._step_down("stopping")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.let_go(LEASE_KEY, self.holder), 2.0)
