"""Files to download: CSV that spreadsheet programs open right, and the response that carries them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from litestar import Response

CSV = "text/csv; charset=utf-8"


def csv_bytes(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows as CSV in UTF-8, with a byte-order mark so that Excel reads the Chinese as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def attachment(content: bytes, filename: str, media_type: str = CSV) -> Response[bytes]:
    """A download: the browser saves ``content`` as ``filename``."""
    return Response(
        content, media_type=media_type, headers={"content-disposition": f'attachment; filename="{filename}"'}
    )
