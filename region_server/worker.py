"""`examkiosk-region-worker`: an RQ worker on the region's queue (central verification)."""
from __future__ import annotations

import argparse
import sys
import threading

from redis import Redis
from rq import Worker

from examkiosk_wire.program import program_parser, run_program
from region_server.config import ConfigError, RegionSettings, load_settings
from region_server.work_queue import queue


def main(argv: list[str] | None = None) -> int:
    parser = program_parser("examkiosk-region-worker", __doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    return run_program(parser, load_settings, run, config_error=ConfigError, argv=argv)


def run(settings: RegionSettings, args: argparse.Namespace, stop: threading.Event) -> int:
    """Work the region's queue (RQ handles SIGTERM itself: it finishes the job in hand, then exits)."""
    conn = Redis.from_url(settings.redis_url)
    worker = Worker([queue(settings, conn)], connection=conn)
    worker.work(burst=args.burst, with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
