"""Chinese resident ID numbers (GB 11643-1999): 17 digits and a check character (0-9 or X)."""
from __future__ import annotations

from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # indexed by the weighted sum mod 11


def check_char(first17: str) -> str:
    """The check character of the first 17 digits."""
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=False)) % 11]


def id_number_problem(value: str) -> str | None:
    """Why ``value`` is not a valid 18-character ID number, or None when it is."""
    value = value.strip().upper()
    if len(value) != 18:
        return "length"
    if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        return "characters"
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "birth_date"
    if check_char(value[:17]) != value[17]:
        return "checksum"
    return None
