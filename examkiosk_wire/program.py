"""The one start-up every long-running program shares: parse the command line, load and validate the
settings (a bad value stops the program with exit status 2 and a message naming the key),
``--check-config``, logging to stdout in one format, SIGTERM/SIGINT setting one stop event, and
SIGUSR1 printing every thread's stack to stderr.

A program gives its parser, its settings loader and its ``run(settings, args, stop)``::

    def main(argv=None):
        return run_program(parser, load_settings, run, argv=argv, config_error=ConfigError)
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose per-request lines would drown the program's own (werkzeug logs every kiosk poll).
QUIET_LOGGERS = ("werkzeug",)

S = TypeVar("S")


def program_parser(prog: str, description: str | None = None) -> argparse.ArgumentParser:
    """A parser with the options every program has: ``--check-config`` and ``--log-level``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def configure_logging(level: str | int = "INFO") -> None:
    """Log lines to stdout (journald and the demo's log files read them there)."""
    logging.basicConfig(level=level, stream=sys.stdout, format=LOG_FORMAT, force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (the program then winds down in its own time)."""

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # `kill -USR1 <pid>`: every thread's stack to stderr (the journal), for a program that seems stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def run_program(parser: argparse.ArgumentParser, load: Callable[[], S],
                run: Callable[[S, argparse.Namespace, threading.Event], int | None], *,
                config_error: type[Exception], argv: list[str] | None = None) -> int:
    """Parse ``argv``, load the settings, then ``run`` them until it returns (0 when it returns None)."""
    args = parser.parse_args(argv)
    try:
        settings = load()
    except config_error as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration OK")
        return 0
    configure_logging(args.log_level)
    stop = threading.Event()
    stop_on_signals(stop)
    return run(settings, args, stop) or 0
