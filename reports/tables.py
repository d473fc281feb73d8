"""Tables of `reports`: built reports, kept until their figures are stale."""

from __future__ import annotations

from piccolo.columns import Integer, Serial, Text, Timestamptz, Varchar
from piccolo.table import Table

from marketplace.clock import ClockNow


class ReportBuild(Table, tablename="rp_report"):
    """One report (a scope and a period) as built by the background job, with its progress."""

    id: Serial

    # scope, period and the version of the figures' code joined: community:5:2026-11:v1.
    key = Varchar(length=80, unique=True)
    scope = Varchar(length=30)
    period = Varchar(length=10)
    version = Integer()
    # queued → building → done | failed; a done report past expires_at is rebuilt when asked for.
    state = Varchar(length=10, default="queued", index=True)
    steps_done = Integer(default=0)
    steps_total = Integer(default=1)
    # The figures as JSON (reports.figures.Figures); empty until the first build is done.
    figures = Text(default="")
    error = Text(default="")
    requested_at = Timestamptz(default=ClockNow())
    built_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None, index=True)
