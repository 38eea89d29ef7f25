"""What the kiosk page may POST: one strict body per route, one payload per candidate action.

Parsed by the project's one parser (:mod:`examkiosk_wire.bodies`): size and depth limited before
the JSON is decoded, then strict types (``"yes"`` is not a boolean), bounded text without NUL or
lone surrogates, unknown keys refused.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from examkiosk_wire.bodies import Body, Int64, Text
from station.messages import MAX_TEXT

# The largest body the page sends is a help request or a mistake report with MAX_TEXT (500)
# characters: 1.5 KB of Chinese as UTF-8, 3 KB if every character came as a \\uXXXX escape, plus
# an envelope of under 100 bytes. 4 KB leaves a quarter of the worst case as headroom.
MAX_BODY_BYTES = 4096


class EventBody(Body):
    """``POST /api/event``: a candidate action and its payload (checked by the action's own model)."""

    name: Text(32)
    payload: dict[Text(32), Any] = Field(default_factory=dict, max_length=4)


class FocusBody(Body):
    """``POST /api/focus``: the page is visible and focused, or not."""

    visible: bool


class HelpBody(Body):
    """``POST /api/help``: a quick reason (one of ``station.messages.REASONS``) and an optional text."""

    reason: Text(16)
    text: Text(MAX_TEXT) = ""


class SeenBody(Body):
    """``POST /api/messages/seen``: the replies up to this id were read."""

    upto: Int64


class NoBody(Body):
    """A route or an action that takes nothing: an empty body or ``{}``."""


# --- the payload of each candidate action (what station/kiosk/static/kiosk.js sends) ----------

class IdentifyPayload(Body):
    ticket_no: Text(32)  # the flow refuses more than 32 (ticket_invalid); the keypad stops at 20


class FallbackCodePayload(Body):
    code: Text(32)  # the flow keeps the letters and digits and wants 4 to 16 of them


class AcceptPayload(Body):
    read_to_end: bool


class ReportMistakePayload(Body):
    text: Text(MAX_TEXT)


class EndExamPayload(Body):
    confirmed: bool


# Every action the page may send, with its payload; everything else (results of I/O, ticks) comes
# from the agent itself. ``devices_ok`` and ``confirm_info`` carry nothing: the station measures.
ACTION_PAYLOADS: dict[str, type[Body]] = {
    "identify": IdentifyPayload,
    "face_capture": NoBody,
    "fallback_code": FallbackCodePayload,
    "accept": AcceptPayload,
    "draw_lot": NoBody,
    "devices_ok": NoBody,
    "refresh_devices": NoBody,
    "confirm_info": NoBody,
    "report_mistake": ReportMistakePayload,
    "next_question": NoBody,
    "end_exam": EndExamPayload,
    "refresh_question": NoBody,
    "resume": NoBody,
    "next_candidate": NoBody,
}
