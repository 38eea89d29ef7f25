"""`examkiosk-edge-worker`: an RQ worker on the edge's queue."""
from __future__ import annotations

import argparse
import logging
import sys

from redis import Redis
from rq import Queue, Worker

from edge_server.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="examkiosk-edge-worker")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration OK")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    conn = Redis.from_url(settings.redis_url)
    worker = Worker([Queue(settings.queue_name, connection=conn)], connection=conn)
    worker.work(burst=args.burst, with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
