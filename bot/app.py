"""Wires the bot together: settings -> store, ERP client, Rocket.Chat REST, router, transport, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.alerts import AlertsReceiver
from bot.core.ports import Identity
from bot.core.router import Router
from bot.erp_client import ErpClient
from bot.leader import Leadership
from bot.metrics import REGISTRY
from bot.reminders import Reminders
from bot.settings import BotSettings
from bot.store import Store, open_store
from bot.tasks import build_tracker
from bot.tasks.outbox import TaskOutbox
from bot.transport.realtime import RealtimeTransport
from bot.transport.rest import RestChatPort, RocketChatRest
from bot.transport.webhook import webhook_routes

log = logging.getLogger("bot.app")
MAX_EXPIRY_SWEEP_SECONDS = 15.0


def http_server_config(settings: BotSettings, app: Any) -> uvicorn.Config:
    """The bot's HTTP server (webhook, alerts, health, metrics): HTTPS with the certificate and key files
    when settings name them (TLS 1.2 at least, no plain HTTP on that port), else plain HTTP."""
    tls: dict[str, Any] = {}
    if settings.http_tls_certfile is not None and settings.http_tls_keyfile is not None:
        tls = {"ssl_certfile": str(settings.http_tls_certfile), "ssl_keyfile": str(settings.http_tls_keyfile)}
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="off",
        **tls,
    )
    if tls:
        config.load()  # makes config.ssl from the two files, which the server then uses
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    return config


class BotApp:
    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings
        ca = str(settings.ca_file) if settings.ca_file else None
        self.ssl_context = ssl.create_default_context(cafile=ca) if ca else None
        self.store: Store = open_store(settings.state_url)
        self.erp = ErpClient(
            settings.erp_api_base,
            settings.erp_api_key.get_secret_value() if settings.erp_api_key else "",
            timeout=settings.erp_timeout,
            retries=settings.erp_retries,
            backoff_base=settings.erp_backoff_base,
            backoff_max=settings.erp_backoff_max,
            breaker_threshold=settings.erp_breaker_threshold,
            breaker_reset_seconds=settings.erp_breaker_reset_seconds,
            ca_file=ca,
        )
        self.rest = RocketChatRest(
            settings.rocketchat_url,
            user_id=settings.rocketchat_user_id if settings.rocketchat_token else None,
            token=settings.rocketchat_token.get_secret_value() if settings.rocketchat_token else None,
            username=settings.rocketchat_username,
            password=settings.rocketchat_password.get_secret_value()
            if settings.rocketchat_password
            else None,
            timeout=settings.rest_timeout,
            ca_file=ca,
        )
        self.identity = Identity()
        tracker = build_tracker(settings)
        self.tasks: TaskOutbox | None = None
        if tracker is not None:
            self.tasks = TaskOutbox(
                store=self.store,
                tracker=tracker,
                language=settings.language,
                timezone=settings.work_calendar.tz,
                max_attempts=settings.tasks_max_attempts,
                backoff_base=settings.tasks_backoff_base,
                backoff_max=settings.tasks_backoff_max,
            )
        self.leadership = Leadership(self.store, ttl=settings.lease_seconds)
        self.router = Router(
            holder=self.leadership.holder,  # its message claims hold while its lease checks go on
            store=self.store,
            erp=self.erp,
            chat=RestChatPort(self.rest),
            identity=self.identity,
            language=settings.language,
            admin_role=settings.admin_role,
            admins_channel=settings.admins_channel,
            admins_channel_commands=settings.admins_channel_commands,
            admin_cache_seconds=settings.admin_cache_seconds,
            dialog_ttl_seconds=settings.dialog_ttl_seconds,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            max_input_length=settings.max_input_length,
            activation_url=settings.erp_activation_url,
            timezone=settings.work_calendar.tz,
            tasks=self.tasks,
        )
        self.reminders = Reminders(
            store=self.store,
            erp=self.erp,
            chat=RestChatPort(self.rest),
            calendar=settings.work_calendar,
            admins_channel=settings.admins_channel,
            language=settings.language,
            pending_after_hours=settings.reminder_pending_after_hours,
            repeat_hours=settings.reminder_repeat_hours,
            expiry_within_hours=settings.reminder_expiry_within_hours,
            activation_url=settings.erp_activation_url,
        )
        self.alerts: AlertsReceiver | None = None
        if settings.alerts_token is not None:
            self.alerts = AlertsReceiver(
                chat=RestChatPort(self.rest),
                admins_channel=settings.admins_channel,
                token=settings.alerts_token.get_secret_value(),
                store=self.store,  # shared by the replicas: each notification posted once
                language=settings.language,
                max_lines=settings.alerts_max_lines,
            )
        # The realtime stream of the current leadership term (None while standing by, and in webhook mode).
        self.realtime: RealtimeTransport | None = None
        self._rest_ok_at = 0.0

    def _new_realtime(self) -> RealtimeTransport:
        return RealtimeTransport(
            ws_url=self.settings.websocket_url,
            rest=self.rest,
            router=self.router,
            store=self.store,
            identity=self.identity,
            ssl_context=self.ssl_context,
            reconnect_max_seconds=self.settings.reconnect_max_seconds,
        )

    # --- HTTP: health, readiness, metrics (+ the webhook endpoint in webhook mode, + alerts) ---
    def http_app(self) -> Starlette:
        routes = [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
        ]
        if self.settings.mode == "webhook" and self.settings.webhook_token is not None:
            routes += webhook_routes(
                self.settings.webhook_path, self.settings.webhook_token.get_secret_value(), self.router
            )
        if self.alerts is not None:
            routes += self.alerts.routes()
        return Starlette(routes=routes)

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> JSONResponse:
        checks: dict[str, bool] = {
            "store": await self.store.ping(),
            "erp": await self.erp.ping(),
            "rocketchat": await self._rocketchat_ok(),
        }
        ready = all(checks.values())
        # A standby is ready (it can take over); `leader` says which replica holds the lease.
        body = {"ready": ready, "checks": checks, "leader": self.leadership.leading.is_set()}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def _rocketchat_ok(self) -> bool:
        if self.realtime is not None and self.leadership.leading.is_set():
            return self.realtime.connected
        if time.monotonic() - self._rest_ok_at < 10:
            return True
        try:
            await self.rest.me()
        except Exception:
            return False
        self._rest_ok_at = time.monotonic()
        return True

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # --- lifecycle ---
    async def _identify(self) -> None:
        """Who the bot is on Rocket.Chat (retried: Rocket.Chat may start after the bot)."""
        delay = 0.5
        while True:
            try:
                await self.rest.login() if self.rest.token is None else None
                me = await self.rest.me()
                self.identity.user_id, self.identity.username = me.user_id, me.username
                log.info("logged in to Rocket.Chat", extra={"bot_user": me.username})
                return
            except Exception as exc:
                log.warning("Rocket.Chat login failed", extra={"reason": f"{type(exc).__name__}"[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.reconnect_max_seconds)

    async def _sweep_expired(self) -> None:
        # Notices go out at most a quarter of the dialog's lifetime late (and never later than 15 s).
        interval = min(MAX_EXPIRY_SWEEP_SECONDS, max(0.5, self.settings.dialog_ttl_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.router.expire_dialogs()

    async def _watch_pending(self) -> None:
        while True:
            await asyncio.sleep(self.settings.pending_poll_seconds)
            try:
                await self.router.check_pending()
            except Exception:
                log.exception("approval watch failed")

    async def _remind(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reminder_check_seconds)
            try:
                await self.reminders.run_once()
            except Exception:
                log.exception("reminder round failed")

    async def _lead(self) -> None:
        """Each leadership term: the realtime stream (realtime mode) and the jobs that must run once."""
        while True:
            await self.leadership.leading.wait()
            jobs = [
                asyncio.create_task(self._sweep_expired(), name="expiry"),
                asyncio.create_task(self._watch_pending(), name="approval-watch"),
            ]
            if self.settings.mode == "realtime":
                self.realtime = self._new_realtime()
                jobs.append(asyncio.create_task(self.realtime.run(), name="realtime"))
            try:
                await self.leadership.lost.wait()
            finally:
                if self.realtime is not None:
                    await self.realtime.stop()
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)

    async def run(self) -> None:
        await self.store.open()
        server = uvicorn.Server(http_server_config(self.settings, self.http_app()))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(server.serve(), name="http")]
        try:
            identify = asyncio.create_task(self._identify())
            await asyncio.wait(
                [identify, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            if not stop.is_set():
                tasks.append(asyncio.create_task(self.leadership.run(), name="leadership"))
                tasks.append(asyncio.create_task(self._lead(), name="lead"))
                if self.settings.reminders_enabled:
                    tasks.append(asyncio.create_task(self._remind(), name="reminders"))
                if self.tasks is not None:
                    # Queued events (also those left from before a restart) go out from here.
                    run = self.tasks.run_forever(self.settings.tasks_poll_seconds)
                    tasks.append(asyncio.create_task(run, name="task-tracker"))
                log.info("bot started", extra={"mode": self.settings.mode})
                await stop.wait()
            identify.cancel()
        finally:
            log.info("bot stopping")
            if self.realtime is not None:
                await self.realtime.stop()
            await self.leadership.stop()  # gives the lease back: a standby takes over at once
            server.should_exit = True
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.rest.aclose()
            await self.erp.aclose()
            if self.tasks is not None:
                await self.tasks.tracker.aclose()
            await self.store.close()
