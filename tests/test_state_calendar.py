"""End dates follow the state's calendar, not the machines' clocks.

A release available until a day can be read through that day in the zone
SOARS_TIME_ZONE names. Two services over the same database, one in the
zone furthest ahead of UTC (UTC+14) and one in the zone furthest behind
(UTC-12), are always on different dates: a release whose last day is
today behind is already expired ahead, for the Python checks (`expired`,
`daysRemaining`) and the SQL that serves the students alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from conftest import GraphQLClient, ServiceThread, TestDatabase, service_settings
from support.release_files import write_release_file
from support.tokens import TestIssuer

from db.layouts import CCI_2017
from db.releases import create_release, load_release_file, publish
from resolvers.cursors import encode_id
from soars.settings import SettingsError, load_settings

LODI = "39685850000000"
AHEAD, BEHIND = "Pacific/Kiritimati", "Etc/GMT+12"  # UTC+14, UTC-12

READ = """
query($id: ID!) {
  report(id: $id) {
    release { expired daysRemaining availableUntil }
    students(first: 5, purpose: ACCOUNTABILITY_REVIEW) { totalCount }
  }
}
"""


async def test_a_release_ends_at_midnight_of_its_last_day_in_the_state_s_zone(
    database: TestDatabase,
    loaded: object,
    issuer: TestIssuer,
    assign: Callable[..., Awaitable[str]],
    owner: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    last_day = datetime.now(ZoneInfo(BEHIND)).date()
    path = write_release_file(
        tmp_path / "cci-2020.csv",
        CCI_2017,
        [{"ssid": "2900000001"}, {"ssid": "2900000002"}],
    )
    release = await create_release(owner, report_type="cci", year=2020)
    await load_release_file(owner, release, path)
    await publish(owner, release, last_day + timedelta(days=30))
    # Publishing refuses a last day that is today; an administrator can
    # shorten a published release to end today, as here.
    await owner.execute(
        "update releases set available_until = $2 where id = $1", release, last_day
    )
    report = await owner.fetchval(
        "select id from reports where release_id = $1 and org_cds = $2", release, LODI
    )
    subject = await assign(LODI, "accountability_coordinator")

    answers = {}
    for zone in (BEHIND, AHEAD):
        settings = service_settings(
            database, issuer, tmp_path / zone.replace("/", "-"), time_zone=zone
        )
        with ServiceThread(settings) as service:
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
                response = await GraphQLClient(http, issuer).query(
                    READ, {"id": encode_id("Report", report)}, subject=subject
                )
        answers[zone] = response.json()

    behind = answers[BEHIND]
    assert "errors" not in behind, behind
    assert behind["data"]["report"]["release"] == {
        "expired": False,
        "daysRemaining": 0,
        "availableUntil": last_day.isoformat(),
    }
    assert behind["data"]["report"]["students"]["totalCount"] == 2

    ahead = answers[AHEAD]
    assert [e["extensions"]["code"] for e in ahead["errors"]] == ["EXPIRED"]
    assert "2900000001" not in str(ahead)


@pytest.mark.parametrize("value", ["Mars/Olympus_Mons", "../etc/passwd", "UTC+3"])
def test_an_unknown_time_zone_stops_the_service_with_its_name(value: str) -> None:
    with pytest.raises(SettingsError, match="SOARS_TIME_ZONE"):
        load_settings({"SOARS_TIME_ZONE": value})


def test_the_time_zone_is_california_s_unless_set() -> None:
    assert load_settings({}).time_zone == "America/Los_Angeles"
    assert load_settings({"SOARS_TIME_ZONE": "America/Denver"}).time_zone == (
        "America/Denver"
    )
