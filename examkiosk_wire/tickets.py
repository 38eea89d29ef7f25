"""The admission ticket's QR payload: ``EXAMKIOSK-TICKET:<ticket_no>``, printed by the edge
(``edge_server.services.tickets``) and read by the station camera (``station.vision.qr``). Any other
text is not a ticket."""
from __future__ import annotations

import re

TICKET_PREFIX = "EXAMKIOSK-TICKET:"
# Ticket numbers as the edge stores them (String(32)): letters, digits, '-' and '_'.
TICKET_NO_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"
_PAYLOAD = re.compile(re.escape(TICKET_PREFIX) + f"({TICKET_NO_PATTERN})")


def ticket_payload(ticket_no: str) -> str:
    """The QR payload for a ticket number; ValueError if the number cannot be encoded."""
    value = ticket_no.strip()
    if not re.fullmatch(TICKET_NO_PATTERN, value):
        raise ValueError(f"not a ticket number: {ticket_no!r}")
    return TICKET_PREFIX + value


def parse_payload(payload: str) -> str | None:
    """The ticket number in an examkiosk payload, or None for any other text."""
    match = _PAYLOAD.fullmatch(payload.strip())
    return match.group(1) if match else None
