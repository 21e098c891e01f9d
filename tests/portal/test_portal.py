"""The portal end to end: a real headless Chromium, the running service and a
real OpenID provider (oidc-provider) on loopback, people signing in with the
authorization code flow and PKCE, and axe-core checking every page.

The service runs on a database of its own, so that the state administrator's
releases and the audit trail these tests read are theirs alone.

Set SOARS_PORTAL_SCREENSHOTS to a folder (docs/screenshots) to save the
screenshots the README shows.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import LAUSD, SFUSD, STATE, ServiceThread, TestDatabase, cde_data
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from support.browser import (
    CHROMIUM_ARGS,
    accessibility_violations,
    axe_source,
    ensure_chromium,
)
from support.idp import ProviderInfo, run_oidc_provider

from db.migrate import migrate
from db.organizations import load_organizations
from db.pool import with_database, with_user
from db.releases import create_release, load_release_file, publish
from db.roles import grant
from soars.settings import IssuerSettings, Mode, PortalSettings, Settings

AUDIENCE = "https://soars.test/api"
CLIENT_ID = "soars-portal"

# (subject at the provider, organization, role)
PEOPLE = {
    "lausd-coordinator": (LAUSD, "accountability_coordinator"),
    "lausd-calpads": (LAUSD, "calpads_coordinator"),
    "sfusd-coordinator": (SFUSD, "accountability_coordinator"),
    "lausd-compliance": (LAUSD, "compliance_officer"),
    "state-admin": (STATE, "state_admin"),
}

# LAUSD's and SFUSD's schools: two LEAs (and their charter schools) are enough.
_LEAS = ("1964733", "3868478")

SHOTS = os.environ.get("SOARS_PORTAL_SCREENSHOTS")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def portal_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def idp(portal_port: int) -> Iterator[ProviderInfo]:
    with run_oidc_provider(
        audience=AUDIENCE,
        scopes=["soars"],
        clients=[
            {
                "client_id": CLIENT_ID,
                "grant_types": ["authorization_code"],
                "redirect_uris": [f"http://127.0.0.1:{portal_port}/signin/callback"],
            }
        ],
        users=[{"accountId": subject} for subject in PEOPLE],
    ) as info:
        yield info


def _two_leas(statewide: Path, into: Path) -> int:
    with statewide.open(newline="") as source, into.open("w", newline="") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        kept = 0
        for row in reader:
            if row["school_cds"].startswith(_LEAS):
                writer.writerow(row)
                kept += 1
    return kept


def _few(source_path: Path, into: Path, *, schools: set[str], count: int) -> None:
    with source_path.open(newline="") as source, into.open("w", newline="") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        rows = (row for row in reader if row["school_cds"] in schools)
        for _, row in zip(range(count), rows, strict=False):
            writer.writerow(row)


@dataclass(frozen=True)
class PortalData:
    database: TestDatabase
    small_file: Path  # a few SFUSD students, for the administrator's release


@pytest.fixture(scope="module")
async def portal_data(
    server_dsn: str,
    cci_sample_file: Path,
    idp: ProviderInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PortalData]:
    name = f"soars_portal_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'create database "{name}"')
    owner_dsn = with_database(server_dsn, name)
    conn = await asyncpg.connect(owner_dsn)
    try:
        await migrate(conn)
        await load_organizations(conn, cde_data() / "pubschls_2018-06-26.txt")
        await load_organizations(conn, cde_data() / "graddownload2019.txt")
        folder = tmp_path_factory.mktemp("portal-data")
        two_leas = folder / "cci-2019-two-leas.csv"
        _two_leas(cci_sample_file, two_leas)
        release = await create_release(conn, report_type="cci", year=2019)
        await load_release_file(conn, release, two_leas)
        await publish(conn, release, date.today() + timedelta(days=90))
        for subject, (org, role) in PEOPLE.items():
            await grant(
                conn,
                issuer=idp.issuer,
                subject=subject,
                org_cds=org,
                role=role,
                granted_by="tests",
            )
        # Students of San Francisco Unified's own schools (not its charters,
        # which are their own LEAs): the state administrator's release.
        schools = await conn.fetch(
            "select cds_code from organizations where lea_cds = $1 and kind = 'school'",
            SFUSD,
        )
        small = folder / "cci-2018-few.csv"
        _few(two_leas, small, schools={row["cds_code"] for row in schools}, count=20)
        yield PortalData(
            TestDatabase(
                owner_dsn=owner_dsn, runtime_dsn=with_user(owner_dsn, "soars_app")
            ),
            small,
        )
    finally:
        await conn.close()
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


def _settings(
    data: PortalData, idp: ProviderInfo, port: int, tmp: Path, **changes: Any
) -> Settings:
    settings = Settings(
        mode=Mode.DEVELOPMENT,
        data_dir=tmp,
        database_url=data.database.owner_dsn,
        runtime_database_url=data.database.runtime_dsn,
        host="127.0.0.1",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        audience=AUDIENCE,
        issuers=(IssuerSettings(issuer=idp.issuer, jwks_url=idp.jwks_uri),),
        secret_key=secrets.token_urlsafe(40),
        graphiql=False,
        pool_min=1,
        pool_max=8,
        portal=PortalSettings(
            client_id=CLIENT_ID,
            issuer=idp.issuer,
            scope="openid profile soars",
            resource=AUDIENCE,
        ),
    )
    return replace(settings, **changes)


@pytest.fixture(scope="module")
def portal(
    portal_data: PortalData,
    idp: ProviderInfo,
    portal_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceThread]:
    settings = _settings(
        portal_data, idp, portal_port, tmp_path_factory.mktemp("portal")
    )
    with ServiceThread(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(executable), args=list(CHROMIUM_ARGS)
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


# --------------------------------------------------------------------------
# What a person does


async def new_context(browser: Browser) -> BrowserContext:
    return await browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )


async def sign_in(browser: Browser, portal: ServiceThread, subject: str) -> Page:
    """A fresh browser, signed in at the provider as `subject`, on the overview."""
    page = await (await new_context(browser)).new_page()
    await page.goto(portal.url + "/")
    await page.get_by_role(
        "link", name="Sign in with your organization account"
    ).click()
    # The provider's test sign-in page lists its users.
    await page.get_by_role("link", name=subject, exact=True).click()
    await page.wait_for_url(portal.url + "/")
    return page


async def expect_accessible(page: Page, axe: str) -> None:
    problems = await accessibility_violations(page, axe)
    assert not problems, f"{page.url}:\n" + "\n".join(problems)


async def snapshot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


async def column(page: Page, table: str, header: str) -> list[str]:
    """The text of one column of a table, found by its header."""
    headers = await page.locator(f"{table} thead th").all_inner_texts()
    index = headers.index(header)
    rows = page.locator(f"{table} tbody tr")
    return [
        (await rows.nth(i).locator("th, td").nth(index).inner_text()).strip()
        for i in range(await rows.count())
    ]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@dataclass
class Journey:
    report_path: str
    student_count: int
    first_page: list[str]
    second_page: list[str]
    downloaded: list[dict[str, str]]


@pytest.fixture(scope="module")
async def coordinator_journey(
    browser: Browser, portal: ServiceThread, axe: str
) -> Journey:
    """Los Angeles Unified's accountability coordinator does their job once."""
    page = await sign_in(browser, portal, "lausd-coordinator")
    await expect_accessible(page, axe)
    await snapshot(page, "overview")

    await (
        page.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Reports")
        .click()
    )
    await expect_accessible(page, axe)
    await snapshot(page, "reports")
    await (
        page.get_by_role("row", name=re.compile("Los Angeles Unified"))
        .get_by_role("link")
        .click()
    )
    report_path = page.url.removeprefix(portal.url)
    facts = page.locator("dl.facts")
    count = int((await facts.locator("dd").first.inner_text()).replace(",", "").strip())
    await expect_accessible(page, axe)
    await snapshot(page, "report")

    await page.get_by_role("link", name="Look through the students").click()
    await page.get_by_label("Reviewing our accountability results").check()
    await expect_accessible(page, axe)
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url(re.compile(r"/students"))
    first = await column(page, "table.students", "SSID")
    await expect_accessible(page, axe)
    await snapshot(page, "students")
    await page.get_by_role("link", name="Next page").click()
    await page.wait_for_url(re.compile(r"after="))
    second = await column(page, "table.students", "SSID")
    lead = await page.locator("p.lead").inner_text()
    assert f"Students 51 to 100 of {count:,}" in lead

    await page.goto(portal.url + report_path)
    async with page.expect_download() as started:
        await page.get_by_role("button", name="Download the file (CSV)").click()
    download = await started.value
    rows = await asyncio.to_thread(_read_csv, await download.path())
    await page.context.close()
    return Journey(report_path, count, first, second, rows)


# --------------------------------------------------------------------------
# Coordinators


async def test_a_coordinator_pages_through_their_cci_report_and_downloads_it(
    coordinator_journey: Journey,
) -> None:
    journey = coordinator_journey

    assert journey.student_count > 1000
    assert len(journey.first_page) == 50 and len(journey.second_page) == 50
    assert journey.first_page == sorted(journey.first_page)
    assert journey.first_page[-1] < journey.second_page[0]
    assert len(journey.downloaded) == journey.student_count
    file_ssids = [row["ssid"] for row in journey.downloaded]
    assert file_ssids[:100] == journey.first_page + journey.second_page


async def test_a_calpads_coordinator_is_told_why_there_is_no_cci_report(
    browser: Browser, portal: ServiceThread, axe: str
) -> None:
    page = await sign_in(browser, portal, "lausd-calpads")
    await (
        page.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Reports")
        .click()
    )

    assert "You have no reports." in await page.locator("main").inner_text()
    reasons = page.get_by_role("row", name="College/Career Indicator")
    reason = await reasons.inner_text()
    assert "Los Angeles Unified" in reason
    assert "does not cover" in reason
    await expect_accessible(page, axe)
    await snapshot(page, "no-report-reason")
    await page.context.close()


async def test_a_coordinator_of_another_lea_cannot_open_the_report_by_its_address(
    browser: Browser, portal: ServiceThread, coordinator_journey: Journey, axe: str
) -> None:
    page = await sign_in(browser, portal, "sfusd-coordinator")

    for path in (
        coordinator_journey.report_path,
        coordinator_journey.report_path + "/students",
    ):
        response = await page.goto(portal.url + path)
        if "/purpose" in page.url:  # asked why first, as for any student page
            await page.get_by_label("Finding and correcting data errors").check()
            async with page.expect_response(re.compile("/students")) as answered:
                await page.get_by_role("button", name="Continue").click()
            response = await answered.value
        assert response is not None and response.status == 404
        text = await page.locator("main").inner_text()
        assert "No report with that id is available to you." in text
        assert "Los Angeles Unified" not in text
        await expect_accessible(page, axe)
    await page.context.close()


async def test_signing_out_ends_the_session_even_for_a_copied_cookie(
    browser: Browser, portal: ServiceThread
) -> None:
    page = await sign_in(browser, portal, "lausd-coordinator")
    copied = await page.context.cookies()

    await page.get_by_role("button", name="Sign out").click()
    assert "You have signed out" in await page.locator("main").inner_text()

    replay = await new_context(browser)
    await replay.add_cookies(copied)  # type: ignore[arg-type]
    other = await replay.new_page()
    await other.goto(portal.url + "/reports")
    assert "/?next=" in other.url
    assert "Please sign in to continue." in await other.locator("main").inner_text()
    await page.context.close()
    await replay.close()


# --------------------------------------------------------------------------
# Compliance officers


async def test_a_compliance_officer_finds_the_coordinators_reads(
    browser: Browser, portal: ServiceThread, coordinator_journey: Journey, axe: str
) -> None:
    page = await sign_in(browser, portal, "lausd-compliance")
    nav = page.get_by_role("navigation", name="Main")

    await nav.get_by_role("link", name="Audit trail").click()
    await expect_accessible(page, axe)
    await page.get_by_label("Person (user id)").fill("lausd-coordinator")
    await page.get_by_label("Action").select_option(label="Read student records")
    await page.get_by_role("button", name="Search").click()
    whats = await column(page, "table.events", "What")
    whos = await column(page, "table.events", "Who")
    students = await column(page, "table.events", "Students")
    wheres = await column(page, "table.events", "From where")
    assert len(whats) >= 2
    assert set(whats) == {"Read student records"}
    assert all(who.startswith("lausd-coordinator") for who in whos)
    assert "Accountability coordinator" in whos[0]
    assert students[:2] == ["50", "50"]
    assert "127.0.0.1" in wheres[0] and "Chrome" in wheres[0]
    await expect_accessible(page, axe)
    await snapshot(page, "audit-trail")

    await nav.get_by_role("link", name="Student disclosures").click()
    await page.get_by_label("Student's SSID (10 digits)").fill(
        coordinator_journey.second_page[0]
    )
    await page.get_by_role("button", name="Show history").click()
    whats = await column(page, "table.events", "What")
    whos = await column(page, "table.events", "Who")
    assert "Read student records" in whats
    assert any(what.startswith("Download") for what in whats)
    assert all(who.startswith("lausd-coordinator") for who in whos)
    await expect_accessible(page, axe)
    await snapshot(page, "student-disclosures")
    await page.context.close()


# --------------------------------------------------------------------------
# State administrators


async def test_a_state_administrator_publishes_extends_and_withdraws_a_release(
    browser: Browser, portal: ServiceThread, portal_data: PortalData, axe: str
) -> None:
    page = await sign_in(browser, portal, "state-admin")
    await (
        page.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Manage releases")
        .click()
    )
    await expect_accessible(page, axe)
    await page.get_by_label("Report type").select_option("CCI")
    await page.get_by_label("Year").fill("2018")
    await page.get_by_label("Label (optional)").fill("CCI 2018 (portal test)")
    await page.get_by_role("button", name="Create draft release").click()
    main = page.locator("main")
    assert "The release was created as a draft" in await main.inner_text()
    number = int(await page.locator("dl.facts dd").first.inner_text())

    # The file goes in on the server, as `soars releases load` does it.
    conn = await asyncpg.connect(portal_data.database.owner_dsn)
    try:
        loaded = await load_release_file(conn, number, portal_data.small_file)
    finally:
        await conn.close()
    await page.reload()
    assert f"{loaded.rows} students in 1 report" in await main.inner_text()
    await expect_accessible(page, axe)

    until = date.today() + timedelta(days=30)
    await page.get_by_label("Available until (last day)").fill(until.isoformat())
    await page.get_by_role("button", name="Publish to coordinators").click()
    assert "The release is published" in await main.inner_text()
    later = until + timedelta(days=30)
    await page.get_by_label("Available until (last day)").fill(later.isoformat())
    await page.get_by_role("button", name="Change the end date").click()
    text = await main.inner_text()
    assert "The end date was changed" in text
    assert f"{later:%B} {later.day}, {later.year}" in text
    await snapshot(page, "admin-release")

    await page.get_by_label("Reason, shown to coordinators").fill("Wrong school codes")
    await page.get_by_label("I understand that coordinators lose access now").check()
    await page.get_by_role("button", name="Withdraw this release").click()
    text = await main.inner_text()
    assert "The release was withdrawn" in text
    assert "Wrong school codes" in text
    await expect_accessible(page, axe)
    await page.context.close()

    # San Francisco's coordinator sees it withdrawn, and why; nothing to open.
    page = await sign_in(browser, portal, "sfusd-coordinator")
    await page.goto(portal.url + "/reports")
    row = page.get_by_role("row", name="CCI 2018 (portal test)")
    assert "Withdrawn" in await row.inner_text()
    assert "Wrong school codes" in await row.inner_text()
    await row.get_by_role("link").click()
    text = await page.locator("main").inner_text()
    assert "Its records can no longer be read or downloaded" in text
    assert await page.get_by_role("button", name="Download the file (CSV)").count() == 0
    await expect_accessible(page, axe)
    await page.context.close()


async def test_a_state_administrator_gives_a_role_and_a_school_is_refused(
    browser: Browser, portal: ServiceThread, axe: str
) -> None:
    page = await sign_in(browser, portal, "state-admin")
    await page.goto(portal.url + "/admin/roles")
    await expect_accessible(page, axe)

    give = page.locator("form", has=page.get_by_role("button", name="Give the role"))
    await give.get_by_label("Person or integration (user id)").fill("new-coordinator")
    await give.get_by_label("Organization (CDS code)").fill(SFUSD)
    await give.get_by_label("Role").select_option(label="Dashboard coordinator")
    await page.get_by_role("button", name="Give the role").click()
    assert "Role given: new-coordinator is Dashboard coordinator at San Francisco" in (
        await page.locator("main").inner_text()
    )

    # A non-charter school receives its data through its LEA.
    give = page.locator("form", has=page.get_by_role("button", name="Give the role"))
    await give.get_by_label("Person or integration (user id)").fill("a-principal")
    await give.get_by_label("Organization (CDS code)").fill("19647331933852")
    await page.get_by_role("button", name="Give the role").click()
    alert = await page.get_by_role("alert").inner_text()
    assert "LEA" in alert
    await expect_accessible(page, axe)
    await page.context.close()


# --------------------------------------------------------------------------
# Pages nobody's journey above visits, and the browser-facing protections


@pytest.mark.parametrize(
    ("subject", "path"),
    [
        (None, "/"),
        (None, "/signin/dev"),
        ("lausd-coordinator", "/releases"),
        ("lausd-coordinator", "/purpose?next=/reports"),
        ("lausd-coordinator", "/no-such-page"),
        ("lausd-compliance", "/audit/integrity"),
        ("lausd-compliance", "/audit/student"),
        ("state-admin", "/admin/releases"),
    ],
)
async def test_every_page_has_no_serious_accessibility_problem(
    browser: Browser, portal: ServiceThread, axe: str, subject: str | None, path: str
) -> None:
    if subject is None:
        page = await (await new_context(browser)).new_page()
    else:
        page = await sign_in(browser, portal, subject)
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    await page.goto(portal.url + path)

    await expect_accessible(page, axe)
    assert not [error for error in errors if "Content Security Policy" in error]
    if path == "/":
        await snapshot(page, "sign-in")
    await page.context.close()


async def test_pages_carry_a_strict_policy_and_refuse_a_form_without_its_token(
    portal: ServiceThread,
) -> None:
    async with httpx.AsyncClient(base_url=portal.url) as client:
        page = await client.get("/")
        refused = await client.post("/signout", data={"csrf_token": "forged"})

    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert refused.status_code == 400


async def test_production_mode_offers_no_sample_users_and_a_secure_cookie(
    portal_data: PortalData, idp: ProviderInfo, tmp_path: Path
) -> None:
    settings = _settings(portal_data, idp, _free_port(), tmp_path, mode=Mode.PRODUCTION)
    with ServiceThread(settings) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            home = await client.get("/")
            sample = await client.get("/signin/dev")

    assert "sample user" not in home.text
    assert sample.status_code == 404
    cookie = home.headers["set-cookie"].lower()
    assert cookie.startswith("__host-soars=") and "secure" in cookie
