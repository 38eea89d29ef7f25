"""`examkiosk-region`: the regional server's program.

    examkiosk-region index                       one index pass over every centre, then exit
    examkiosk-region verify [--all] [--no-rehash] verify pending (or all) attempts in this process
    examkiosk-region daemon                      index every interval and queue verification, until SIGTERM
    examkiosk-region users add NAME --role R [--password-stdin]   (default: a generated password, printed once)
    examkiosk-region users list | users deactivate NAME
    examkiosk-region db upgrade                  apply the Alembic migrations

The web pages are gunicorn's job (``region_server:create_app()``, the examkiosk-region-web unit).
"""
from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import threading

from flask_migrate import upgrade
from sqlalchemy import select

from examkiosk_wire.program import program_parser, run_program
from region_server.app import MIGRATIONS_DIR, create_app
from region_server.config import ConfigError, RegionSettings, load_settings
from region_server.daemon import index_pass, run_daemon
from region_server.errors import RegionError
from region_server.extensions import db
from region_server.jobs import verify_in_app
from region_server.models import Attempt, Role, Verification
from region_server.users import create_user, deactivate, list_users

logger = logging.getLogger("region_server.cli")


def parser() -> argparse.ArgumentParser:
    p = program_parser("examkiosk-region", __doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="command")
    sub.add_parser("index", help="one index pass over every centre")
    verify = sub.add_parser("verify", help="verify attempts in this process")
    verify.add_argument("--all", action="store_true", help="every attempt, not only the pending ones")
    verify.add_argument("--no-rehash", action="store_true", help="HEAD and chain only, no full re-hash")
    sub.add_parser("daemon", help="index every interval and queue verification until SIGTERM")
    users = sub.add_parser("users", help="regional user accounts").add_subparsers(dest="users", required=True)
    add = users.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    users.add_parser("list")
    off = users.add_parser("deactivate")
    off.add_argument("username")
    database = sub.add_parser("db", help="the database schema").add_subparsers(dest="db", required=True)
    database.add_parser("upgrade")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_program(parser(), load_settings, run, config_error=ConfigError, argv=argv)


def run(settings: RegionSettings, args: argparse.Namespace, stop: threading.Event) -> int:
    if args.command is None:
        parser().print_usage(sys.stderr)
        return 2
    app = create_app(settings)
    if args.command == "index":
        report = index_pass(app)
        print(json.dumps({"centres": report.centres, "listed": report.listed, "fetched": report.fetched,
                          "attempts": len(report.attempts), "problems": report.problems, "busy": report.busy}))
        return 0
    if args.command == "daemon":
        logger.info("region daemon running (index every %.0f s)", settings.index.interval_seconds)
        run_daemon(app, stop)
        logger.info("region daemon stopped")
        return 0
    with app.app_context():
        if args.command == "verify":
            query = select(Attempt.id).order_by(Attempt.id)
            if not args.all:
                query = query.where(Attempt.verification.in_([Verification.PENDING, Verification.PRESENT]))
            for attempt_id in db.session.scalars(query).all():
                if stop.is_set():
                    break
                print(json.dumps(verify_in_app(app, attempt_id, rehash=not args.no_rehash)))
            return 0
        if args.command == "db":
            upgrade(directory=str(MIGRATIONS_DIR))
            return 0
        return _users(args)


def _users(args: argparse.Namespace) -> int:
    try:
        if args.users == "add":
            given = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
            password = given or secrets.token_urlsafe(12)
            create_user(db.session, args.username, password, args.role)
            db.session.commit()
            print(json.dumps({"username": args.username, "role": args.role,
                              "password": "(as given)" if given else password}))
        elif args.users == "list":
            for user in list_users(db.session):
                print(json.dumps({"username": user.username, "role": user.role, "active": user.active}))
        else:
            deactivate(db.session, args.username)
            db.session.commit()
            print(json.dumps({"username": args.username, "active": False}))
    except RegionError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
