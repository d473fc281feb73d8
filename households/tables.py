"""Tables of `households`: areas, households, members, need groups and levels, warnings."""

from __future__ import annotations

from piccolo.columns import ForeignKey, Serial, Varchar
from piccolo.table import Table


class District(Table, tablename="hh_district"):
    """A district (区): the unit a civil-affairs bureau runs the programme for."""

    id: Serial
    code = Varchar(length=12, unique=True)
    name = Varchar(length=50)


class Street(Table, tablename="hh_street"):
    """A street (街道) of a district; its office supervises the stewards of its communities."""

    id: Serial
    district = ForeignKey(references=District, index=True)
    code = Varchar(length=12, unique=True)
    name = Varchar(length=50)


class Community(Table, tablename="hh_community"):
    """A community (社区): every household and every provider service area points at one."""

    id: Serial
    street = ForeignKey(references=Street, index=True)
    code = Varchar(length=15, unique=True)
    name = Varchar(length=50)
