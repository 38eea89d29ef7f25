"""The software version every program reports (status, discovery TXT ``v``, enrolment)."""
from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    try:
        return metadata.version("examkiosk")
    except metadata.PackageNotFoundError:
        return "0+unknown"
