"""`examkiosk-edge-daemon`: MQTT bridge, zeroconf announcement and scheduler until SIGTERM."""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from edge_server.app import create_app
from edge_server.config import ConfigError, EdgeSettings, load_settings
from edge_server.daemon.announce import Announcer
from edge_server.daemon.bridge import MqttBridge
from edge_server.daemon.scheduler import Scheduler
from examkiosk_wire.program import program_parser, run_program

logger = logging.getLogger("edge_server.daemon")


def main(argv: list[str] | None = None) -> int:
    parser = program_parser("examkiosk-edge-daemon", __doc__)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between scheduler rounds")
    return run_program(parser, load_settings, run, config_error=ConfigError, argv=argv)


def run(settings: EdgeSettings, args: argparse.Namespace, stop: threading.Event) -> int:
    """Bridge, announcement and scheduler until ``stop`` is set; each stopped in ``finally``."""
    app = create_app(settings)
    bridge = MqttBridge(settings, app)
    announcer = Announcer(settings) if settings.discovery.enabled else None
    scheduler = Scheduler(settings, app, interval=args.interval)
    scheduler_thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True)
    try:
        bridge.start()
        if announcer is not None:
            announcer.start()
        scheduler_thread.start()
        logger.info("edge daemon of centre %s running", settings.centre)
        while not stop.wait(1.0):
            pass
    finally:
        stop.set()
        if scheduler_thread.is_alive():
            scheduler_thread.join(timeout=10)
        if announcer is not None:
            announcer.stop()
        bridge.stop()
        logger.info("edge daemon stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
