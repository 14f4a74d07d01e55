"""``shopcast`` / ``python -m server``: serve, worker, migrate, create-admin, openapi, asyncapi."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from importlib.metadata import version

import structlog
from pydantic import ValidationError
from sqlalchemy import select

from api.identity.auth import hash_password
from api.identity.models import Role, User
from api.realtime.contract import asyncapi_yaml
from api.rest import openapi_spec, rest_api
from api.web.schemas import email_address
from server import http, migrate
from server.app import build_app, run_worker
from server.database import create_engine, session_factory
from server.logs import configure_logging
from server.settings import Settings
from server.tls import server_context


def _settings_help() -> str:
    lines = ["settings (environment variables, also read from .env):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default in ("", [], None) or "secret" in name else f" [default: {default}]"
        lines.append(f"  SHOPCAST_{name.upper():<24} {field.description}{shown}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopcast", description="Shopcast live-commerce server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser(
        "serve",
        help="serve the API, pages and media (default)",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="bind address (SHOPCAST_HOST)")
    serve.add_argument("--port", type=int, help="HTTP port (SHOPCAST_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        help="media processes, default one per usable CPU (SHOPCAST_SFU_WORKERS)",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a self-signed certificate made in the data dir (development)",
    )
    commands.add_parser(
        "worker",
        help="process uploaded videos (media jobs); `serve` runs one too unless "
        "SHOPCAST_MEDIA_WORKER=false",
    )
    up = commands.add_parser("migrate", help="apply database migrations")
    up.add_argument("--to", help="target revision (default: head; with --downgrade, required)")
    up.add_argument("--downgrade", action="store_true", help="move down to --to (e.g. base)")
    admin = commands.add_parser("create-admin", help="create an admin, or promote an account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--display-name", default="Admin")
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    spec = commands.add_parser("openapi", help="print the OpenAPI document")
    spec.add_argument("--output", help="write to this file instead of standard output")
    events = commands.add_parser("asyncapi", help="print the AsyncAPI document (YAML)")
    events.add_argument("--output", help="write to this file instead of standard output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"shopcast: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    command = args.command or "serve"
    if command == "serve":
        return _serve(
            settings,
            args.host if args.command else None,
            args.port if args.command else None,
            tls=bool(args.command and args.tls),
            workers=args.workers if args.command else None,
        )
    if command == "worker":
        asyncio.run(run_worker(settings))
        return 0
    if command == "migrate":
        if args.downgrade and not args.to:
            print("shopcast: --downgrade needs --to REVISION (e.g. base)", file=sys.stderr)
            return 2
        url = settings.resolved_database_url
        (migrate.downgrade if args.downgrade else migrate.upgrade)(url, args.to or "head")
        return 0
    if command == "create-admin":
        return asyncio.run(_create_admin(settings, args))
    if command == "asyncapi":
        return _write(asyncapi_yaml(version("shopcast")), args.output)
    return _write(json.dumps(openapi_spec(rest_api()), indent=2) + "\n", args.output)


def _write(text: str, output: str | None) -> int:
    if output:
        with open(output, "w") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _serve(
    settings: Settings,
    host: str | None,
    port: int | None,
    *,
    tls: bool = False,
    workers: int | None = None,
) -> int:
    settings.host = host or settings.host
    settings.sfu_workers = settings.sfu_workers if workers is None else workers
    settings.port = settings.port if port is None else port
    context = server_context(settings.data_dir, settings.host) if tls else None
    if tls and not settings.public_url:
        settings.public_url = settings.resolved_public_url.replace("http://", "https://", 1)
    current, head = migrate.pending(settings.resolved_database_url)
    if current != head:
        print(
            f"shopcast: the database is at revision {current or 'empty'}, this code needs {head}:"
            " run `shopcast migrate` first",
            file=sys.stderr,
        )
        return 1
    log = structlog.get_logger("shopcast")
    log.info("serving", version=version("shopcast"), url=settings.resolved_public_url)
    http.serve(build_app(settings), settings.host, settings.port, context)
    return 0


async def _create_admin(settings: Settings, args: argparse.Namespace) -> int:
    try:
        email = email_address(args.email).lower()  # the rule sign-in applies
    except ValueError as error:
        print(f"shopcast: {args.email} cannot be an account's email: {error}", file=sys.stderr)
        return 2
    password = (
        sys.stdin.readline().rstrip("\n")
        if args.password_stdin
        else os.environ.get("SHOPCAST_ADMIN_PASSWORD") or getpass.getpass("Password: ")
    )
    if len(password) < 8:
        print("shopcast: the password needs at least 8 characters", file=sys.stderr)
        return 2
    engine = create_engine(settings.resolved_database_url)
    try:
        async with session_factory(engine).begin() as session:
            user = await session.scalar(select(User).where(User.email == email))
            if user is None:
                user = User(email=email, display_name=args.display_name, password_hash="")
                session.add(user)
            user.role = Role.ADMIN
            user.password_hash = hash_password(password)
    finally:
        await engine.dispose()
    print(f"{email} is an admin")
    return 0
