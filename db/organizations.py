"""Storing organizations read from the CDE directory and Dashboard files.

Reloading is idempotent: a directory record replaces the stored record with
the same CDS code; a record known only from a Dashboard file fills a gap and
never replaces a directory record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import asyncpg

from db.directory import Organization, read_dashboard_organizations, read_directory
from db.errors import DirectoryError

_COLUMNS = [f.name for f in fields(Organization)]


@dataclass(frozen=True, slots=True)
class OrgLoadSummary:
    read: int
    inserted: int
    updated: int
    kept: int


def _reader(path: Path) -> Callable[[Path], Iterator[Organization]]:
    try:
        with path.open("rb") as handle:
            header = handle.readline()
    except OSError as exc:
        raise DirectoryError(path, 0, "", f"cannot be read: {exc.strerror}") from exc
    if b"CDSCode" in header:
        return read_directory
    if b"rtype" in header:
        return read_dashboard_organizations
    raise DirectoryError(
        path,
        1,
        "",
        "is neither a CDE directory file (CDSCode column) nor a Dashboard "
        "download file (cds and rtype columns)",
    )


async def load_organizations(conn: asyncpg.Connection, path: Path) -> OrgLoadSummary:
    reader = _reader(path)
    records = [astuple(org) for org in reader(path)]

    async with conn.transaction():
        await conn.execute(
            "create temporary table incoming (like organizations including defaults) "
            "on commit drop"
        )
        await conn.copy_records_to_table("incoming", records=records, columns=_COLUMNS)
        assignments = ", ".join(
            f"{c} = excluded.{c}" for c in _COLUMNS if c != "cds_code"
        )
        names = ", ".join(_COLUMNS)
        rows = await conn.fetch(
            f"""
            insert into organizations ({names})
            select {names} from incoming
            on conflict (cds_code) do update set {assignments}, loaded_at = now()
            where excluded.source = 'directory'
               or organizations.source = 'dashboard'
            returning (xmax = 0) as inserted
            """
        )
        # The directory is a snapshot; a later Dashboard file can know of a
        # school that has since converted to a charter (two Los Angeles
        # Unified high schools between the 2018 directory and the 2019
        # Dashboard). A charter has its own report, so that fact is kept.
        converted = await conn.execute(
            """
            update organizations o set kind = 'charter', charter = true
            from incoming i
            where i.cds_code = o.cds_code and i.source = 'dashboard'
              and i.kind = 'charter' and o.kind = 'school'
            """
        )
    inserted = sum(1 for row in rows if row["inserted"])
    updated = len(rows) - inserted
    return OrgLoadSummary(
        read=len(records),
        inserted=inserted,
        updated=updated + int(converted.split()[-1]),
        kept=len(records) - len(rows),
    )
