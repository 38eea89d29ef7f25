"""`examkiosk-edge-worker`: an RQ worker on the edge's queues (pushes first, then syncs and imports)."""
from __future__ import annotations

import argparse
import sys
import threading

from redis import Redis
from rq import Worker

from edge_server.config import ConfigError, EdgeSettings, load_settings
from edge_server.work_queue import queues
from examkiosk_wire.program import program_parser, run_program


def main(argv: list[str] | None = None) -> int:
    parser = program_parser("examkiosk-edge-worker", __doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    return run_program(parser, load_settings, run, config_error=ConfigError, argv=argv)


def run(settings: EdgeSettings, args: argparse.Namespace, stop: threading.Event) -> int:
    """Work the edge's queue (RQ handles SIGTERM itself: it finishes the job in hand, then exits)."""
    conn = Redis.from_url(settings.redis_url)
    worker = Worker(queues(settings, conn), connection=conn)
    worker.work(burst=args.burst, with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
