"""CSV downloads of the regional tables: UTF-8 with a BOM (Excel opens it right), one header row."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

from flask import Response


def csv_response(name: str, columns: list[str], rows: list[dict[str, Any]]) -> Response:
    """``rows`` as a CSV attachment ``<name>-<UTC time>.csv`` with ``columns`` in that order."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    filename = f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M}.csv"
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
