"""The bot's state: open dialogs, handled message ids, the audit trail, a few values (last seen time),
claims (what was already done once, such as a reminder sent: `claim` succeeds for one caller only),
and the outbox of task-tracker events (delivered in order by `bot.tasks.outbox`; dead letters kept apart).

Incoming messages are handled at least once, in two phases (`begin_handling`, `finish_handling`): a
replica first claims the message id in the name of its holder id, handles it, and marks it handled only
after its replies were posted. A claim holds while its holder is alive: every replica refreshes an
`alive` mark with each lease check (`hold`, every lease/3 s, leader or standby), set with the same
lifetime in the same step as the lease, so the claims of a replica that died are void by the time its
lease has run out and a standby leads. The standby then handles the message again; the reply is posted
under an id derived from the message's (bot/core/router.py), which Rocket.Chat posts only once.

SQLite by default (writes on one worker thread, so the event loop never waits for a lock or a sync;
point reads on the loop through a second, read-only connection: in WAL mode readers never wait for the
writer, and a hop to the thread costs more than the read), or Redis (`redis://...`) when several webhook
replicas share the state.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

SEEN_TTL_SECONDS = 7 * 24 * 3600
CLAIM_TTL_SECONDS = 24 * 3600  # a claim nobody finished (its holder died) is dropped after a day
ALIVE_PREFIX = "alive:"
# begin_handling's answers
NEW, DONE, BUSY = "new", "done", "busy"
AUDIT_KEEP = 10_000


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...
    async def get_dialog(self, user_id: str) -> dict[str, Any] | None: ...
    async def put_dialog(self, user_id: str, data: dict[str, Any], expires_at: float) -> None: ...
    async def delete_dialog(self, user_id: str) -> None: ...
    async def expired_dialogs(self, now: float) -> list[dict[str, Any]]: ...
    async def mark_seen(self, message_id: str) -> bool: ...
    async def begin_handling(self, message_id: str, holder: str) -> str: ...
    async def finish_handling(self, message_id: str, holder: str, *, done: bool) -> None: ...
    async def add_audit(self, entry: dict[str, Any]) -> None: ...
    async def list_audit(self, limit: int) -> list[dict[str, Any]]: ...
    async def get_value(self, key: str) -> str | None: ...
    async def set_value(self, key: str, value: str) -> None: ...
    async def claim(self, key: str, until: float, now: float) -> bool: ...
    async def release(self, key: str, until: float) -> None: ...
    async def claimed(self, key: str, now: float) -> bool: ...
    async def hold(self, key: str, holder: str, ttl: float) -> bool: ...
    async def let_go(self, key: str, holder: str) -> None: ...
    async def outbox_add(self, entry: dict[str, Any]) -> int: ...
    async def outbox_list(self, limit: int) -> list[dict[str, Any]]: ...
    async def outbox_save(self, entry: dict[str, Any]) -> None: ...
    async def outbox_remove(self, entry_id: int) -> None: ...
    async def outbox_bury(self, entry: dict[str, Any]) -> None: ...
    async def outbox_counts(self) -> tuple[int, int]: ...


def open_store(url: str) -> Store:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    return SqliteStore(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


SCHEMA = """
CREATE TABLE IF NOT EXISTS dialogs (user_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dialogs_expires ON dialogs (expires_at);
CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, request_id TEXT, user_id TEXT, username TEXT,
  command TEXT, outcome TEXT, detail TEXT
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS handling (message_id TEXT PRIMARY KEY, holder TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_dead (id INTEGER PRIMARY KEY, data TEXT NOT NULL, at REAL NOT NULL);
"""


class _AuditBatches:
    """Audit entries written in batches (one hop to the backend per batch, not per command).

    A store calls `_audit_init()` in its constructor and implements `_write_audit(entries)`.
    """

    def _audit_init(self) -> None:
        self._audit_buffer: list[dict[str, Any]] = []
        self._audit_flush: asyncio.Task[None] | None = None

    async def add_audit(self, entry: dict[str, Any]) -> None:
        self._audit_buffer.append({"at": time.time(), **entry})
        if self._audit_flush is None or self._audit_flush.done():
            self._audit_flush = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0.05)
        await self.flush_audit()

    async def flush_audit(self) -> None:
        entries, self._audit_buffer = self._audit_buffer, []
        if entries:
            await self._write_audit(entries)

    async def _write_audit(self, entries: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class SqliteStore(_AuditBatches):
    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bot-store")
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._writes = 0
        self._audit_init()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db
        if self.path != ":memory:":  # an in-memory database is one connection's own
            reader = sqlite3.connect(
                f"file:{quote(str(Path(self.path).resolve()))}?mode=ro",
                uri=True,
                check_same_thread=False,
                timeout=10,
            )
            reader.isolation_level = None
            self._reader = reader

    async def _read(self, sql: str, params: tuple[Any, ...]) -> Any:
        """One row of a point read: on the loop with the read connection, else on the worker thread."""
        if self._reader is not None:
            return self._reader.execute(sql, params).fetchone()
        return await self._run(lambda: self.db.execute(sql, params).fetchone())

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self.flush_audit()
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            await self._run(lambda: self.db.execute("SELECT 1").fetchone())
        except (sqlite3.Error, RuntimeError):
            return False
        return True

    async def get_dialog(self, user_id: str) -> dict[str, Any] | None:
        row = await self._read("SELECT data FROM dialogs WHERE user_id = ?", (user_id,))
        return json.loads(row[0]) if row else None

    async def put_dialog(self, user_id: str, data: dict[str, Any], expires_at: float) -> None:
        payload = json.dumps(data, ensure_ascii=False)
        await self._run(
            lambda: self.db.execute(
                "INSERT INTO dialogs (user_id, data, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
                (user_id, payload, expires_at),
            )
        )

    async def delete_dialog(self, user_id: str) -> None:
        await self._run(lambda: self.db.execute("DELETE FROM dialogs WHERE user_id = ?", (user_id,)))

    async def expired_dialogs(self, now: float) -> list[dict[str, Any]]:
        rows = await self._run(
            lambda: self.db.execute("SELECT data FROM dialogs WHERE expires_at <= ?", (now,)).fetchall()
        )
        return [json.loads(row[0]) for row in rows]

    def _mark_seen(self, message_id: str) -> bool:
        now = time.time()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO seen (message_id, at) VALUES (?, ?)", (message_id, now)
        )
        self._writes += 1
        if self._writes % 1000 == 0:
            self.db.execute("DELETE FROM seen WHERE at < ?", (now - SEEN_TTL_SECONDS,))
        return cursor.rowcount == 1

    async def mark_seen(self, message_id: str) -> bool:
        return await self._run(self._mark_seen, message_id)

    def _begin_handling(self, message_id: str, holder: str) -> str:
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self.db.execute("SELECT 1 FROM seen WHERE message_id = ?", (message_id,)).fetchone():
                state = DONE
            else:
                row = self.db.execute(
                    "SELECT holder FROM handling WHERE message_id = ?", (message_id,)
                ).fetchone()
                alive = row is not None and (
                    row[0] == holder
                    or self.db.execute(
                        "SELECT 1 FROM leases WHERE key = ? AND until > ?", (ALIVE_PREFIX + row[0], now)
                    ).fetchone()
                    is not None
                )
                state = BUSY if alive else NEW
                if state == NEW:
                    self.db.execute(
                        "INSERT OR REPLACE INTO handling (message_id, holder, at) VALUES (?, ?, ?)",
                        (message_id, holder, now),
                    )
                    self.db.execute("DELETE FROM handling WHERE at < ?", (now - CLAIM_TTL_SECONDS,))
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return state

    async def begin_handling(self, message_id: str, holder: str) -> str:
        """Claim a message for `holder`: NEW (claimed: handle it), DONE (handled before) or BUSY (a live
        replica, or this one, is handling it now)."""
        return await self._run(self._begin_handling, message_id, holder)

    def _finish_handling(self, message_id: str, holder: str, done: bool) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if done:
                self._mark_seen(message_id)
            self.db.execute("DELETE FROM handling WHERE message_id = ? AND holder = ?", (message_id, holder))
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def finish_handling(self, message_id: str, holder: str, *, done: bool) -> None:
        """Give the claim back; with `done` the message is marked handled (its replies are posted),
        without it a later delivery handles it again."""
        await self._run(self._finish_handling, message_id, holder, done)

    def _add_audit(self, entries: list[dict[str, Any]]) -> None:
        rows = [
            (
                entry.get("at", time.time()),
                entry.get("request_id"),
                entry.get("user_id"),
                entry.get("username"),
                entry.get("command"),
                entry.get("outcome"),
                entry.get("detail"),
            )
            for entry in entries
        ]
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT INTO audit (at, request_id, user_id, username, command, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        last = self.db.execute("SELECT max(id) FROM audit").fetchone()[0] or 0
        if last // 1000 != (last - len(rows)) // 1000:
            self.db.execute("DELETE FROM audit WHERE id <= ?", (last - AUDIT_KEEP,))

    async def _write_audit(self, entries: list[dict[str, Any]]) -> None:
        await self._run(self._add_audit, entries)

    async def list_audit(self, limit: int) -> list[dict[str, Any]]:
        await self.flush_audit()
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT id, at, request_id, user_id, username, command, outcome, detail FROM audit "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        keys = ("id", "at", "request_id", "user_id", "username", "command", "outcome", "detail")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def get_value(self, key: str) -> str | None:
        row = await self._read("SELECT value FROM kv WHERE key = ?", (key,))
        return row[0] if row else None

    async def set_value(self, key: str, value: str) -> None:
        await self._run(
            lambda: self.db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    def _claim(self, key: str, until: float, now: float) -> bool:
        # One transaction: two processes sharing the file cannot both take the same key.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM claims WHERE until <= ?", (now,))
            taken = self.db.execute(
                "INSERT OR IGNORE INTO claims (key, until) VALUES (?, ?)", (key, until)
            ).rowcount
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return taken == 1

    async def claim(self, key: str, until: float, now: float) -> bool:
        """Take `key` until the time `until`; False while someone else holds it (and `now` < its end)."""
        return await self._run(self._claim, key, until, now)

    async def release(self, key: str, until: float) -> None:
        """Give a claim back (the work failed), only if it is still the one taken with `until`."""
        await self._run(
            lambda: self.db.execute("DELETE FROM claims WHERE key = ? AND until = ?", (key, until))
        )

    async def claimed(self, key: str, now: float) -> bool:
        """Whether someone holds `key` at `now` (a look only: nothing is taken)."""
        row = await self._read("SELECT 1 FROM claims WHERE key = ? AND until > ?", (key, now))
        return row is not None

    def _hold(self, key: str, holder: str, ttl: float) -> bool:
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # The holder's alive mark (its message claims hold while it lasts), whatever the lease says.
            self.db.execute(
                "INSERT OR REPLACE INTO leases (key, holder, until) VALUES (?, ?, ?)",
                (ALIVE_PREFIX + holder, holder, now + ttl),
            )
            self.db.execute("DELETE FROM leases WHERE key LIKE ? AND until <= ?", (ALIVE_PREFIX + "%", now))
            taken = self.db.execute(
                "INSERT INTO leases (key, holder, until) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "holder = excluded.holder, until = excluded.until WHERE leases.holder = excluded.holder "
                "OR leases.until <= ?",
                (key, holder, now + ttl, now),
            ).rowcount
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return taken == 1

    async def hold(self, key: str, holder: str, ttl: float) -> bool:
        """Take the lease `key` for `ttl` seconds, or extend it if `holder` has it; False while another
        holder's lease runs (wall clock: processes sharing the file share it)."""
        return await self._run(self._hold, key, holder, ttl)

    async def let_go(self, key: str, holder: str) -> None:
        """End the lease now if `holder` has it (a clean stop: the standby need not wait it out)."""
        await self._run(
            lambda: self.db.execute("DELETE FROM leases WHERE key = ? AND holder = ?", (key, holder))
        )

    # --- outbox: events in insertion order (the id); each entry is a JSON object with its "id" ---
    async def outbox_add(self, entry: dict[str, Any]) -> int:
        payload = json.dumps(entry, ensure_ascii=False)
        return await self._run(
            lambda: self.db.execute("INSERT INTO outbox (data) VALUES (?)", (payload,)).lastrowid
        )

    async def outbox_list(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._run(
            lambda: self.db.execute("SELECT id, data FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        )
        return [{**json.loads(data), "id": entry_id} for entry_id, data in rows]

    async def outbox_save(self, entry: dict[str, Any]) -> None:
        payload = json.dumps(entry, ensure_ascii=False)
        await self._run(
            lambda: self.db.execute("UPDATE outbox SET data = ? WHERE id = ?", (payload, entry["id"]))
        )

    async def outbox_remove(self, entry_id: int) -> None:
        await self._run(lambda: self.db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)))

    def _outbox_bury(self, entry: dict[str, Any]) -> None:
        self.db.execute("BEGIN")
        try:
            self.db.execute(
                "INSERT OR REPLACE INTO outbox_dead (id, data, at) VALUES (?, ?, ?)",
                (entry["id"], json.dumps(entry, ensure_ascii=False), time.time()),
            )
            self.db.execute("DELETE FROM outbox WHERE id = ?", (entry["id"],))
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def outbox_bury(self, entry: dict[str, Any]) -> None:
        """Move an entry to the dead letters (kept for the operator; never delivered again)."""
        await self._run(self._outbox_bury, entry)

    async def outbox_counts(self) -> tuple[int, int]:
        """(waiting, dead-lettered)."""
        return await self._run(
            lambda: (
                self.db.execute("SELECT count(*) FROM outbox").fetchone()[0],
                self.db.execute("SELECT count(*) FROM outbox_dead").fetchone()[0],
            )
        )


# Claims on Redis: compare the stored end with the caller's clock, so an injected clock works too;
# the key also expires by itself so nothing accumulates.
_CLAIM_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held and tonumber(held) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
# A lease: taken when free, extended only by its holder; Redis ends it by itself when not renewed.
# The holder's alive mark (KEYS[2]) is set in the same step with the same lifetime, lease or not.
_HOLD_SCRIPT = """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# Audit entries (JSON objects without their id) get consecutive ids and go to the head of the list.
_AUDIT_SCRIPT = """
local last = redis.call('INCRBY', KEYS[1], #ARGV - 1)
for i = 2, #ARGV do
  local entry = cjson.decode(ARGV[i])
  entry['id'] = last - #ARGV + i
  redis.call('LPUSH', KEYS[2], cjson.encode(entry))
end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
return last
"""
# begin_handling: KEYS seen, claim; ARGV holder, the alive marks' prefix, the claim's lifetime (s).
_BEGIN_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'done' end
local held = redis.call('GET', KEYS[2])
if held and (held == ARGV[1] or redis.call('EXISTS', ARGV[2] .. held) == 1) then return 'busy' end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return 'new'
"""
# finish_handling: KEYS seen, claim; ARGV holder, done ('1'/'0'), the seen mark's lifetime (s).
_FINISH_SCRIPT = """
if ARGV[2] == '1' then redis.call('SET', KEYS[1], '1', 'EX', ARGV[3]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore(_AuditBatches):
    """Same contract on Redis: dialogs as strings with a sorted set of expiry times, seen ids with TTL."""

    PREFIX = "rcbot:"

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis: Any = None
        self._audit_init()

    async def open(self) -> None:
        import redis.asyncio as redis_asyncio  # optional backend: import only when configured

        self._redis = redis_asyncio.from_url(self.url, decode_responses=True, socket_timeout=5)
        await self._redis.ping()

    async def close(self) -> None:
        if self._redis is not None:
            await self.flush_audit()
            await self._redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    def _k(self, *parts: str) -> str:
        return self.PREFIX + ":".join(parts)

    async def get_dialog(self, user_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._k("dialog", user_id))
        return json.loads(raw) if raw else None

    async def put_dialog(self, user_id: str, data: dict[str, Any], expires_at: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("dialog", user_id), json.dumps(data, ensure_ascii=False))
            pipe.zadd(self._k("dialog-expiry"), {user_id: expires_at})
            await pipe.execute()

    async def delete_dialog(self, user_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._k("dialog", user_id))
            pipe.zrem(self._k("dialog-expiry"), user_id)
            await pipe.execute()

    async def expired_dialogs(self, now: float) -> list[dict[str, Any]]:
        users = await self._redis.zrangebyscore(self._k("dialog-expiry"), "-inf", now)
        dialogs = [await self.get_dialog(u) for u in users]
        return [d for d in dialogs if d]

    async def mark_seen(self, message_id: str) -> bool:
        return bool(await self._redis.set(self._k("seen", message_id), "1", nx=True, ex=SEEN_TTL_SECONDS))

    async def begin_handling(self, message_id: str, holder: str) -> str:
        keys = (self._k("seen", message_id), self._k("handling", message_id))
        alive_prefix = self._k(ALIVE_PREFIX.rstrip(":"), "")
        return str(await self._redis.eval(_BEGIN_SCRIPT, 2, *keys, holder, alive_prefix, CLAIM_TTL_SECONDS))

    async def finish_handling(self, message_id: str, holder: str, *, done: bool) -> None:
        keys = (self._k("seen", message_id), self._k("handling", message_id))
        await self._redis.eval(_FINISH_SCRIPT, 2, *keys, holder, "1" if done else "0", SEEN_TTL_SECONDS)

    async def _write_audit(self, entries: list[dict[str, Any]]) -> None:
        # One script call per batch (ids and the list in one step), not three round trips per command.
        payloads = [json.dumps(e, ensure_ascii=False) for e in entries]
        keys = (self._k("audit-id"), self._k("audit"))
        await self._redis.eval(_AUDIT_SCRIPT, 2, *keys, AUDIT_KEEP, *payloads)

    async def list_audit(self, limit: int) -> list[dict[str, Any]]:
        await self.flush_audit()
        return [json.loads(x) for x in await self._redis.lrange(self._k("audit"), 0, limit - 1)]

    async def get_value(self, key: str) -> str | None:
        return await self._redis.get(self._k("kv", key))

    async def set_value(self, key: str, value: str) -> None:
        await self._redis.set(self._k("kv", key), value)

    async def claim(self, key: str, until: float, now: float) -> bool:
        ttl_ms = max(1, int((until - now) * 1000))
        return bool(
            await self._redis.eval(_CLAIM_SCRIPT, 1, self._k("claim", key), repr(until), repr(now), ttl_ms)
        )

    async def release(self, key: str, until: float) -> None:
        await self._redis.eval(_RELEASE_SCRIPT, 1, self._k("claim", key), repr(until))

    async def claimed(self, key: str, now: float) -> bool:
        held = await self._redis.get(self._k("claim", key))
        return held is not None and float(held) > now

    async def hold(self, key: str, holder: str, ttl: float) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        alive = self._k(ALIVE_PREFIX.rstrip(":"), holder)
        return bool(await self._redis.eval(_HOLD_SCRIPT, 2, self._k("lease", key), alive, holder, ttl_ms))

    async def let_go(self, key: str, holder: str) -> None:
        await self._redis.eval(_RELEASE_SCRIPT, 1, self._k("lease", key), holder)

    # Outbox: entries in a hash by id, their order in a sorted set scored by id (ids from a counter).
    async def outbox_add(self, entry: dict[str, Any]) -> int:
        entry_id = int(await self._redis.incr(self._k("outbox-id")))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("outbox"), str(entry_id), json.dumps({**entry, "id": entry_id}, ensure_ascii=False)
            )
            pipe.zadd(self._k("outbox-order"), {str(entry_id): entry_id})
            await pipe.execute()
        return entry_id

    async def outbox_list(self, limit: int) -> list[dict[str, Any]]:
        ids = await self._redis.zrange(self._k("outbox-order"), 0, limit - 1)
        if not ids:
            return []
        values = await self._redis.hmget(self._k("outbox"), ids)
        return [{**json.loads(v), "id": int(i)} for i, v in zip(ids, values, strict=True) if v]

    async def outbox_save(self, entry: dict[str, Any]) -> None:
        # Only while it is still queued: a removed entry must not come back.
        if await self._redis.zscore(self._k("outbox-order"), str(entry["id"])) is not None:
            await self._redis.hset(self._k("outbox"), str(entry["id"]), json.dumps(entry, ensure_ascii=False))

    async def outbox_remove(self, entry_id: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._k("outbox"), str(entry_id))
            pipe.zrem(self._k("outbox-order"), str(entry_id))
            await pipe.execute()

    async def outbox_bury(self, entry: dict[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("outbox-dead"), str(entry["id"]), json.dumps(entry, ensure_ascii=False))
            pipe.hdel(self._k("outbox"), str(entry["id"]))
            pipe.zrem(self._k("outbox-order"), str(entry["id"]))
            await pipe.execute()

    async def outbox_counts(self) -> tuple[int, int]:
        return (
            int(await self._redis.zcard(self._k("outbox-order"))),
            int(await self._redis.hlen(self._k("outbox-dead"))),
        )
