"""``examkiosk-provision``: set up a station or an edge. Subcommands:

- ``enrol --code FFFF-XXXX-XXXX``: join this station to its centre (provisioning/enrol.py).
- ``install-station [--check]``: packages, users, units and the kiosk's browser lockdown
  (provisioning/install_station.py).
"""
from __future__ import annotations

import argparse
import logging
import sys

from provisioning import enrol, install_station


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="examkiosk-provision", description="Set up an examkiosk station.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens underneath")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    enrol.add_parser(subparsers)
    install_station.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Failures are explained in one line by the command itself; library logs only with -v.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
