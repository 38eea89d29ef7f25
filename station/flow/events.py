"""What the flow reacts to: an ``Event`` (a candidate's action, a result of I/O, the tick)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Event:
    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)

