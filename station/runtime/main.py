"""`examkiosk-station`: the station program. It loads the settings, starts the runtime and the
kiosk's web server, and runs the loop until SIGTERM/SIGINT (``examkiosk_wire.program``)."""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from examkiosk_wire.program import program_parser, run_program
from station.config import ConfigError, StationSettings, load_settings
from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime

logger = logging.getLogger(__name__)


def run(settings: StationSettings, args: argparse.Namespace, stop: threading.Event) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings)
    # The program's stop event (set by SIGTERM/SIGINT) stops the runtime's loop.
    threading.Thread(target=lambda: (stop.wait(), runtime.stop_event.set()), name="signals", daemon=True).start()
    runtime.start()
    server = serve_kiosk(runtime.kiosk, settings.kiosk.host, settings.kiosk.port)
    logger.info("kiosk at http://%s:%d/", settings.kiosk.host, settings.kiosk.port)
    try:
        runtime.run()
    finally:
        server.shutdown()
        runtime.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = program_parser("examkiosk-station", "examkiosk station agent")
    return run_program(parser, load_settings, run, argv=argv, config_error=ConfigError)


if __name__ == "__main__":
    sys.exit(main())
