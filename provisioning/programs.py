"""The other programs of the appliance, run as their units run them: by their console scripts.

Provisioning shares only ``examkiosk_wire`` with the station and the edge; it never imports
them. When it needs one of them (the station's ``--check-config``, the demo's processes) it runs
the program in a process of its own, through the console script the installed software declares
(``[project.scripts]`` in pyproject.toml), looked up when it is needed: a program whose
``main`` moves to another module is still found.
"""
from __future__ import annotations

import importlib.metadata
import sys

STATION = "examkiosk-station"
EDGE_DAEMON = "examkiosk-edge-daemon"
EDGE_WORKER = "examkiosk-edge-worker"


class ProgramMissing(LookupError):
    """The installed software declares no such console script."""


def entry_point(name: str) -> tuple[str, str]:
    """``(module, function)`` of the console script ``name``."""
    found = list(importlib.metadata.entry_points(group="console_scripts", name=name))
    if not found:
        raise ProgramMissing(f"no {name} program is installed (pip install examkiosk)")
    module, _, attr = found[0].value.partition(":")
    return module.strip(), attr.strip() or "main"


def command(name: str, *args: str, python: str = sys.executable) -> list[str]:
    """argv running the console script ``name`` with ``args`` by ``python``, as the script itself
    would: ``sys.argv[0]`` is its name and the exit status is what its function returns."""
    module, attr = entry_point(name)
    call = f"import sys; from {module} import {attr} as main; sys.argv[0] = {name!r}; sys.exit(main())"
    return [python, "-c", call, *args]
