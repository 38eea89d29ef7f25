"""`examkiosk-edge-daemon`: MQTT bridge, zeroconf announcement and scheduler until SIGTERM."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from edge_server.config import ConfigError, load_settings

logger = logging.getLogger("edge_server.daemon")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="examkiosk-edge-daemon", description=__doc__)
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between scheduler rounds")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration OK")
        return 0
    logging.basicConfig(level=args.log_level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    from edge_server import create_app
    from edge_server.daemon.announce import Announcer
    from edge_server.daemon.bridge import MqttBridge
    from edge_server.daemon.scheduler import Scheduler

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
