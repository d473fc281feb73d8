"""A report as titled tables: what a page shows under each chart, and what CSV and XLSX export.

Values stay numbers (rates as fractions, times in minutes), so that an export parses back to
the figures; pages format them.  Titles and headers are translated for the current locale.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook

from marketplace.exports import csv_bytes
from marketplace.i18n import N_, current_locale, gettext
from reports.figures import Figures


@dataclass
class Column:
    label: str
    kind: str = "count"  # text, count, rate, minutes, average


@dataclass
class Sheet:
    """One table of a report; ``chart`` names the numeric columns its chart draws."""

    id: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    chart: list[int] = field(default_factory=list)
    note: str = ""


def _level(level: int) -> str:
    return gettext(N_("Level %(level)s"), level=level)


def _category_name(name_zh: str, name_en: str) -> str:
    return name_zh if current_locale.get() == "zh_CN" else name_en


def sheets(f: Figures) -> list[Sheet]:
    """Every table of a report, in the order the page shows them."""
    result = [_categories(f), _levels(f), _times(f)]
    if f.reach is not None:
        r = f.reach
        result.append(
            Sheet(
                "reach",
                gettext(N_("Households reached")),
                [Column(gettext(N_("Measure")), "text"), Column(gettext(N_("Households")))],
                [
                    [gettext(N_("Level 1 households")), r.level1_households],
                    [gettext(N_("Level 1 households served in the period")), r.level1_served],
                    [gettext(N_("Level 1 not reached in 60 days")), r.not_reached_level1],
                    [gettext(N_("Level 2 not reached in 60 days")), r.not_reached_level2],
                ],
                chart=[1],
                note=gettext(
                    N_(
                        "Share of level 1 households served: %(share)s. Not reached: no order and no "
                        "visit in the 60 days up to the end of the period."
                    ),
                    share=_percent(r.level1_share),
                ),
            )
        )
    result.append(
        Sheet(
            "credits",
            gettext(N_("Credits")),
            [Column(gettext(N_("Measure")), "text"), Column(gettext(N_("Credits")))],
            [
                [gettext(N_("Credits granted")), f.credits.granted],
                [gettext(N_("Credits spent")), f.credits.spent],
            ],
            chart=[1],
        )
    )
    s = f.satisfaction
    result.append(
        Sheet(
            "satisfaction",
            gettext(N_("Satisfaction")),
            [Column(gettext(N_("Rating")), "text"), Column(gettext(N_("Ratings")))],
            [[gettext(N_("%(n)s stars"), n=i + 1), n] for i, n in enumerate(s.by_stars)],
            chart=[1],
            note=gettext(
                N_("Average rating: %(avg)s of 5 (%(n)s ratings)."), avg=_number(s.average), n=s.rated
            ),
        )
    )
    if f.warnings is not None:
        w = f.warnings
        result.append(
            Sheet(
                "warnings",
                gettext(N_("Warnings")),
                [Column(gettext(N_("Measure")), "text"), Column(gettext(N_("Warnings")))],
                [
                    [gettext(N_("Warnings raised")), w.raised],
                    [gettext(N_("Verified by a visit")), w.verified],
                    [gettext(N_("Verified on time")), w.verified_on_time],
                    [gettext(N_("Open and overdue")), w.open_overdue],
                ],
                chart=[1],
                note=gettext(
                    N_("Verified on time: %(share)s of the warnings raised."), share=_percent(w.on_time_rate)
                ),
            )
        )
    if f.areas:
        result.append(
            Sheet(
                "areas",
                gettext(N_("By area")),
                [
                    Column(gettext(N_("Area")), "text"),
                    Column(gettext(N_("Orders"))),
                    Column(gettext(N_("Completed orders"))),
                    Column(gettext(N_("Not reached"))),
                ],
                [[a.name, a.orders, a.completed, a.not_reached] for a in f.areas],
                chart=[1, 2],
            )
        )
    return result


def _categories(f: Figures) -> Sheet:
    levels = sorted({c.level for c in f.categories} | {1, 2, 3})
    by_category: dict[str, list[Any]] = {}
    for c in f.categories:
        row = by_category.setdefault(c.category, [_category_name(c.name_zh, c.name_en)] + [0] * len(levels))
        row[1 + levels.index(c.level)] += c.orders
    rows = [[*row, sum(row[1:])] for row in by_category.values()]
    return Sheet(
        "categories",
        gettext(N_("Orders by service and need level")),
        [
            Column(gettext(N_("Service")), "text"),
            *[Column(_level(level)) for level in levels],
            Column(gettext(N_("Total"))),
        ],
        rows,
        chart=list(range(1, len(levels) + 1)),
    )


def _levels(f: Figures) -> Sheet:
    return Sheet(
        "levels",
        gettext(N_("Orders by need level")),
        [
            Column(gettext(N_("Need level")), "text"),
            Column(gettext(N_("Submitted orders"))),
            Column(gettext(N_("Accepted orders"))),
            Column(gettext(N_("Completed orders"))),
            Column(gettext(N_("Cancelled orders"))),
            Column(gettext(N_("Escalated orders"))),
            Column(gettext(N_("Response target missed"))),
            Column(gettext(N_("Acceptance rate")), "rate"),
            Column(gettext(N_("Completion rate")), "rate"),
        ],
        [
            [
                _level(x.level),
                x.submitted,
                x.accepted,
                x.completed,
                x.cancelled,
                x.escalated,
                x.sla_missed,
                x.acceptance_rate,
                x.completion_rate,
            ]
            for x in f.levels
        ],
        chart=[1, 2, 3],
        note=gettext(
            N_(
                "Acceptance rate: accepted orders of those not cancelled before acceptance. "
                "Completion rate: completed orders of those accepted."
            )
        ),
    )


def _times(f: Figures) -> Sheet:
    return Sheet(
        "times",
        gettext(N_("Time to accept and to serve (minutes)")),
        [
            Column(gettext(N_("Need level")), "text"),
            Column(gettext(N_("Median time to accept")), "minutes"),
            Column(gettext(N_("90% accepted within")), "minutes"),
            Column(gettext(N_("Median time to serve")), "minutes"),
            Column(gettext(N_("90% served within")), "minutes"),
        ],
        [
            [
                _level(x.level),
                x.accept_median_minutes,
                x.accept_p90_minutes,
                x.serve_median_minutes,
                x.serve_p90_minutes,
            ]
            for x in f.levels
        ],
        chart=[1, 3],
        note=gettext(N_("From submission to acceptance, and from submission to the start of the service.")),
    )


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def cell(value: Any, kind: str) -> str:
    """A value as a page shows it."""
    if value is None:
        return "–"
    if kind == "rate":
        return _percent(value)
    if kind == "minutes":
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- exports -----------------------------------------------------------------------------------


def title_of(f: Figures) -> str:
    return gettext(N_("Report: %(scope)s, %(period)s"), scope=f.scope_name, period=f.period)


def to_csv(f: Figures) -> bytes:
    """Every table one after another: its title on a line, its header, its rows, a blank line."""
    rows: list[list[Any]] = [[title_of(f)], []]
    for sheet in sheets(f):
        rows += [[sheet.title], [c.label for c in sheet.columns], *sheet.rows, []]
    return csv_bytes(rows)


def to_xlsx(f: Figures) -> bytes:
    """One worksheet per table, numbers as numbers, rates formatted as percentages."""
    book = Workbook()
    book.remove(book.active)
    for sheet in sheets(f):
        ws = book.create_sheet(sheet.id)
        ws.append([sheet.title])
        ws.append([c.label for c in sheet.columns])
        for row in sheet.rows:
            ws.append(row)
        for index, column in enumerate(sheet.columns, start=1):
            if column.kind == "rate":
                for (cell_,) in ws.iter_rows(min_row=3, min_col=index, max_col=index):
                    cell_.number_format = "0.0%"
            ws.column_dimensions[ws.cell(row=2, column=index).column_letter].width = 18
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
