"""`python -m rocketchat_sim`: serve REST + DDP on BIND_IP:PORT, the fault control API if asked, and the
Prometheus exporter when Prometheus_Enabled is true at start."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from .app import Simulator
from .config import SimSettings
from .faults import ListenerControl, control_app
from .metrics import Exporter, exporter_port
from .migrations import MigrationError
from .state import StateFileError

log = logging.getLogger("rocketchat_sim")


def _uvicorn_config(app: object, host: str, port: int, level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # sans-I/O websockets: lets the DDP fan-out write pre-built frames straight to each transport
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def _exporter_socket(host: str, port: int) -> socket.socket | None:
    """Bind the Prometheus exporter's port; None (logged) when that fails, the API still starts.

    Rocket.Chat's exporter fails the same way on its own: the scrape finds nothing listening.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        log.error("Prometheus exporter cannot listen on %s:%s: %s", host, port, exc)
        return None
    sock.setblocking(False)
    return sock


async def _serve(config: SimSettings, sim: Simulator) -> None:
    level = config.SIM_LOG_LEVEL.lower()
    server = uvicorn.Server(_uvicorn_config(sim, config.BIND_IP, config.PORT, level))
    # Servers besides the API skip signal capture (private _serve): the main server owns SIGTERM/SIGINT.
    # On SIGTERM uvicorn re-raises the signal once the API has shut down, which ends the process and
    # these servers with it; on any other way out they are stopped here.
    extra: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    if config.SIM_CONTROL_PORT:
        listeners = ListenerControl(server, config.BIND_IP, config.PORT)
        control_cfg = _uvicorn_config(
            control_app(sim, listeners), "127.0.0.1", config.SIM_CONTROL_PORT, level
        )
        control_cfg.lifespan = "off"
        control = uvicorn.Server(control_cfg)
        extra.append((control, asyncio.create_task(control._serve())))
    metrics_port = exporter_port(sim)
    sock = _exporter_socket(config.BIND_IP, metrics_port) if metrics_port else None
    if sock is not None:
        metrics_cfg = _uvicorn_config(Exporter(sim), config.BIND_IP, metrics_port, level)
        metrics_cfg.lifespan = "off"
        exporter = uvicorn.Server(metrics_cfg)
        extra.append((exporter, asyncio.create_task(exporter._serve(sockets=[sock]))))
    try:
        await server.serve()
    finally:
        for aux, _ in extra:
            aux.should_exit = True
        for _, task in extra:
            await task


def main() -> int:
    try:
        config = SimSettings()
    except ValidationError as exc:
        print(f"rocketchat_sim: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.SIM_LOG_LEVEL.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request URL at INFO; outgoing webhook URLs may hold secrets
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        sim = Simulator(config)
    except StateFileError as exc:
        print(f"rocketchat_sim: {exc}", file=sys.stderr)
        return 2
    except MigrationError as exc:
        # Rocket.Chat's process.exit(1) after its error box: before uvicorn binds, nothing saved
        print(exc.box, file=sys.stderr, flush=True)
        return 1
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(config, sim))
    return 0


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; plain asyncio still works
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
