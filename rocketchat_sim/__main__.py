"""`python -m rocketchat_sim`: serve REST + DDP on BIND_IP:PORT, and the fault control API if asked."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from .app import Simulator
from .config import SimSettings
from .faults import ListenerControl, control_app
from .state import StateFileError


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


async def _serve(config: SimSettings, sim: Simulator) -> None:
    level = config.SIM_LOG_LEVEL.lower()
    server = uvicorn.Server(_uvicorn_config(sim, config.BIND_IP, config.PORT, level))
    control_task = None
    control = None
    if config.SIM_CONTROL_PORT:
        listeners = ListenerControl(server, config.BIND_IP, config.PORT)
        control_cfg = _uvicorn_config(
            control_app(sim, listeners), "127.0.0.1", config.SIM_CONTROL_PORT, level
        )
        control_cfg.lifespan = "off"
        control = uvicorn.Server(control_cfg)
        # _serve skips signal capture: the main server owns SIGTERM/SIGINT and stops the control server.
        control_task = asyncio.create_task(control._serve())
    try:
        await server.serve()
    finally:
        if control is not None and control_task is not None:
            control.should_exit = True
            await control_task


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
