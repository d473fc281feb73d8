"""Charts drawn on the server as SVG: horizontal bars, one group per table row.

No script and no library: the SVG scales to the page's width (a 360 px phone included), each
bar carries its value as text, and the table under the chart is its text alternative.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from reports.sheets import Sheet, cell

WIDTH = 300
LABEL_HEIGHT = 18
BAR_HEIGHT = 17
GAP = 10
VALUE_ROOM = 64
# Dark enough for text contrast on white and told apart by the legend's words, not colour alone.
COLOURS = ("#1f5fa8", "#b35a00", "#2e7d32", "#6a3d9a")


def bar_chart(sheet: Sheet) -> Markup:
    """The chart of a sheet's ``chart`` columns, or nothing if it has none or no rows."""
    if not sheet.chart or not sheet.rows:
        return Markup("")
    series = sheet.chart
    values = [float(row[i] or 0) for row in sheet.rows for i in series]
    top = max(values) if values and max(values) > 0 else 1.0
    span = WIDTH - VALUE_ROOM
    parts: list[str] = []
    y = 0
    if len(series) > 1:
        # One legend entry per line: names are too long (and too Chinese) to guess their width.
        for n, index in enumerate(series):
            parts.append(
                f'<rect x="0" y="{y + 3}" width="12" height="12" fill="{COLOURS[n % len(COLOURS)]}"/>'
                f'<text x="18" y="{y + 14}" class="legend">{escape(sheet.columns[index].label)}</text>'
            )
            y += LABEL_HEIGHT
        y += GAP
    for row in sheet.rows:
        parts.append(f'<text x="0" y="{y + 14}" class="label">{escape(str(row[0]))}</text>')
        y += LABEL_HEIGHT
        for n, index in enumerate(series):
            value = row[index]
            width = 0.0 if value is None else max(0.0, float(value)) / top * span
            kind = sheet.columns[index].kind
            parts.append(
                f'<rect x="0" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT - 2}" '
                f'fill="{COLOURS[n % len(COLOURS)]}"/>'
                f'<text x="{width + 4:.1f}" y="{y + BAR_HEIGHT - 3}" class="value">'
                f"{escape(cell(value, kind))}</text>"
            )
            y += BAR_HEIGHT
        y += GAP
    title_id = f"chart-{sheet.id}"
    return Markup(  # noqa: S704 - every text in it went through escape() above
        f'<svg class="chart" role="img" aria-labelledby="{title_id}" viewBox="0 0 {WIDTH} {y}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{title_id}">{escape(sheet.title)}</title>{"".join(parts)}</svg>'
    )
