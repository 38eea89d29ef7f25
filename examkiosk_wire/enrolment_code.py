"""The one-time enrolment code's format, shared by the edge (which makes codes) and the station CLI.

``FFFF-XXXX-XXXX``: ``FFFF`` is the first four hex digits (upper case) of the edge's fingerprint,
the ``fp`` of its zeroconf announcement, so a station finds the edge that made the code and no
other; the eight ``X`` are random from an alphabet without look-alikes (no 0/O, no 1/I/L).
"""
from __future__ import annotations

import re
import secrets

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
PREFIX_LENGTH = 4
RANDOM_LENGTH = 8
EXAMPLE = "FFFF-XXXX-XXXX"
_PATTERN = re.compile(rf"^[0-9A-F]{{{PREFIX_LENGTH}}}[{ALPHABET}]{{{RANDOM_LENGTH}}}$")


def fingerprint_prefix(fingerprint: str) -> str:
    """The code's first group: the fingerprint's first four hex digits, upper case."""
    prefix = fingerprint[:PREFIX_LENGTH].upper()
    if not re.fullmatch(r"[0-9A-F]{4}", prefix):
        raise ValueError(f"fingerprint {fingerprint!r} does not start with four hex digits")
    return prefix


def normalise(code: str) -> str:
    """Upper case, without the spaces and dashes of the printed form."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def parse(code: str) -> str | None:
    """The normalised code if it has the shape ``FFFF-XXXX-XXXX``, else None."""
    value = normalise(code) if isinstance(code, str) else ""
    return value if _PATTERN.match(value) else None


def display(normalised: str) -> str:
    """``ABCDEFGHJKMN`` shown as ``ABCD-EFGH-JKMN``."""
    return "-".join(normalised[i:i + 4] for i in range(0, len(normalised), 4))


def new_code(fingerprint: str) -> str:
    """A fresh normalised code for the edge with this fingerprint."""
    return fingerprint_prefix(fingerprint) + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))


def prefix_of(normalised: str) -> str:
    return normalised[:PREFIX_LENGTH]
