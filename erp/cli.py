"""Command line of the ERP service: serve, migrate, seed positions, manage API keys, print the OpenAPI."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def _alembic_config():  # type: ignore[no-untyped-def]
    from alembic.config import Config

    return Config(str(ALEMBIC_INI))


# PostgreSQL advisory lock key of schema upgrades: the same in every ERP process (any constant would do).
MIGRATION_LOCK_KEY = 0x4552_505F_4D49_4752  # "ERP_MIGR"
# How long an ERP host waits for another one's upgrade before it gives up with an error.
MIGRATION_LOCK_TIMEOUT_SECONDS = 600


@contextmanager
def migration_lock() -> Iterator[None]:
    """Held around the schema upgrade. ERP hosts that share one PostgreSQL start together (`serve
    --migrate` on each): one upgrades, the others wait here, then find the schema at head. SQLite is one
    file of one host (its own write lock): nothing to do."""
    from sqlalchemy import text

    from erp.db import build_engine
    from erp.settings import get_settings

    settings = get_settings()
    if settings.is_sqlite:
        yield
        return
    engine = build_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"SET lock_timeout = '{int(MIGRATION_LOCK_TIMEOUT_SECONDS)}s'"))
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()


def cmd_migrate(_args: argparse.Namespace) -> int:
    from alembic import command

    with migration_lock():
        command.upgrade(_alembic_config(), "head")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from erp.db import write_session
    from erp.services import positions

    path = Path(args.file) if args.file else positions.DEFAULT_SEED
    try:
        items = positions.load_seed(path)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with write_session() as session:
        created, updated = positions.seed(session, items)
    print(f"positions: {created} created, {updated} updated from {path}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from erp import logs
    from erp.server import GuardedHttpToolsProtocol, ServerLimits
    from erp.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level)
    log = logging.getLogger("erp")
    if settings.secret_is_ephemeral:
        if not _is_loopback(args.host):
            print(
                f"error: refusing to listen on {args.host} without a real secret: set ERP_SECRET_KEY_FILE "
                "(or ERP_SECRET_KEY) to a random value of at least 32 characters",
                file=sys.stderr,
            )
            return 2
        log.warning(
            "no ERP_SECRET_KEY: using a random secret that lives as long as this process "
            "(tokens, activation codes and replays die with it); listening on loopback only"
        )
    if settings.environment == "development":
        log.warning("ERP_ENVIRONMENT is development: set production for a real deployment")
    if args.migrate:
        cmd_migrate(args)
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print("error: --ssl-certfile and --ssl-keyfile go together (HTTPS needs both)", file=sys.stderr)
        return 2
    ServerLimits.configure(settings)
    # HTTPS when given a certificate and its key (files: the key never passes through the environment);
    # Python's default server context: TLS 1.2 at least.
    tls = {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile} if args.ssl_certfile else {}
    uvicorn.run(
        "erp.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=GuardedHttpToolsProtocol,
        log_config=None,  # erp.logs: JSON lines
        log_level=settings.log_level.lower(),
        access_log=args.access_log,
        proxy_headers=False,  # X-Forwarded-For is handled by the app, only from trusted proxies
        server_header=False,
        timeout_keep_alive=5,
        limit_concurrency=settings.server_max_connections + 1,  # erp.server refuses the extra ones first
        backlog=min(2048, settings.server_max_connections),
        **tls,
    )
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from erp.security.api_keys import create_key

    try:
        key = create_key(args.name, args.scope, args.allow or [])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _audit_cli("key.create", args.name, "scopes:" + ",".join(sorted(set(args.scope))))
    print(key)
    print(f"created key {args.name!r}; it is shown only now, store it in a secret store", file=sys.stderr)
    return 0


def _audit_cli(action: str, key_name: str, detail: str | None = None) -> None:
    """Key changes made on the command line are audited like the API's (actor `cli`)."""
    from erp.services import audit

    audit.record(audit.Actor("cli", None, None), action, "ok", f"key:{key_name}", detail)


def cmd_keys_list(_args: argparse.Namespace) -> int:
    from erp.security.api_keys import list_keys

    print(f"{'name':<24} {'scopes':<12} {'networks':<24} {'created':<20} {'last used':<20} revoked")
    for key in list_keys():
        fmt = "%Y-%m-%d %H:%M:%S"
        print(
            f"{key.name:<24} {key.scopes:<12} {key.allowed_networks or 'any':<24} "
            f"{key.created_at.strftime(fmt):<20} "
            f"{key.last_used_at.strftime(fmt) if key.last_used_at else '-':<20} "
            f"{key.revoked_at.strftime(fmt) if key.revoked_at else '-'}"
        )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from erp.security.api_keys import rotate_key

    try:
        key, previous = rotate_key(args.name, revoke_previous=args.revoke_previous)
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _audit_cli("key.rotate", args.name, f"previous:{previous}" + (" revoked" if args.revoke_previous else ""))
    print(key)
    if args.revoke_previous:
        print(f"rotated key {args.name!r}; the previous one ({previous!r}) is revoked", file=sys.stderr)
    else:
        print(
            f"rotated key {args.name!r}; the previous one stays valid as {previous!r} until "
            f"`keys revoke --previous {args.name}`",
            file=sys.stderr,
        )
    return 0


def cmd_keys_allow(args: argparse.Namespace) -> int:
    from erp.security.api_keys import set_networks

    try:
        changed = set_networks(args.name, args.allow or [])
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if changed:
        _audit_cli("key.networks", args.name, "networks:" + ",".join(args.allow or []))
    print("changed" if changed else "unchanged")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from erp.security.api_keys import revoke_key, revoke_previous_keys

    if args.previous:
        revoked = revoke_previous_keys(args.name)
        for name in revoked:
            _audit_cli("key.revoke", name, f"previous of {args.name}")
        print(f"revoked {len(revoked)} previous key(s) of {args.name!r}: {', '.join(revoked) or '-'}")
        return 0
    if revoke_key(args.name):
        _audit_cli("key.revoke", args.name)
        print(f"revoked key {args.name!r}")
        return 0
    print(f"error: no active key named {args.name!r}", file=sys.stderr)
    return 1


def cmd_purge_expired(_args: argparse.Namespace) -> int:
    """Delete the idempotency records older than ERP_IDEMPOTENCY_TTL_HOURS (run on a schedule)."""
    from erp.db import write_session
    from erp.services.idempotency import purge_expired
    from erp.settings import get_settings

    settings = get_settings()
    with write_session() as session:
        removed = purge_expired(session, settings)
    print(f"idempotency records: {removed} expired removed (older than {settings.idempotency_ttl_hours} h)")
    return 0


def cmd_alerts_check(_args: argparse.Namespace) -> int:
    """Read-only: reach the alerts webhook's Rocket.Chat as a delivery would (nothing is posted)."""
    from erp.services.alerts import probe_webhook
    from erp.settings import get_settings

    reachable, message = probe_webhook(get_settings())
    print(f"alerts webhook: {message}", file=sys.stdout if reachable else sys.stderr)
    return 0 if reachable else 1


def cmd_openapi(_args: argparse.Namespace) -> int:
    from erp.openapi import openapi_document

    print(json.dumps(openapi_document(), indent=2, ensure_ascii=False, sort_keys=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m erp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    serve.add_argument("--access-log", action="store_true", help="log every request (uvicorn access log)")
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM, chain after the leaf)")
    serve.add_argument("--ssl-keyfile", help="the certificate's private key (PEM, unencrypted; a 0600 file)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)").set_defaults(
        func=cmd_migrate
    )
    seed = sub.add_parser("seed-positions", help="upsert positions from a YAML file")
    seed.add_argument("file", nargs="?", help="YAML file (default: the positions.yaml shipped with erp)")
    seed.set_defaults(func=cmd_seed)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print it once on stdout")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", required=True, choices=["bot", "admin"])
    create.add_argument(
        "--allow", action="append", metavar="CIDR", help="allowed source network (repeatable)"
    )
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list keys (never their secrets)").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by name (its name can be used again)")
    revoke.add_argument("name")
    revoke.add_argument(
        "--previous",
        action="store_true",
        help="revoke instead the keys `keys rotate` replaced (NAME.<id>), leaving NAME itself",
    )
    revoke.set_defaults(func=cmd_keys_revoke)
    rotate = keys.add_parser(
        "rotate",
        help="print a new secret for an active key (same scopes and networks); the previous one stays "
        "valid as NAME.<id> until `keys revoke --previous NAME`",
    )
    rotate.add_argument("--name", required=True)
    rotate.add_argument("--revoke-previous", action="store_true", help="revoke the previous secret at once")
    rotate.set_defaults(func=cmd_keys_rotate)
    allow = keys.add_parser(
        "allow",
        help="set the source networks an active key may be used from (replaces them; none: any); "
        "prints changed or unchanged",
    )
    allow.add_argument("--name", required=True)
    allow.add_argument("--allow", action="append", metavar="CIDR", help="allowed source network (repeatable)")
    allow.set_defaults(func=cmd_keys_allow)

    sub.add_parser(
        "purge-expired", help="delete expired idempotency records (they hold encrypted responses)"
    ).set_defaults(func=cmd_purge_expired)
    sub.add_parser(
        "alerts-check",
        help="reach the alerts webhook's Rocket.Chat (name, route, certificate), posting nothing; 1 if not",
    ).set_defaults(func=cmd_alerts_check)
    sub.add_parser("openapi", help="print the OpenAPI document (commit it as erp/openapi.json)").set_defaults(
        func=cmd_openapi
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:  # settings from the environment are invalid
        # Never pydantic's own text: it repeats the input values, secrets among them.
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            print(f"error: invalid settings: {where}: {error.get('msg', 'invalid')}", file=sys.stderr)
        return 2
