"""A district's system fetches its file unattended: a client-credentials token
from a real OpenID provider (the certified `oidc-provider`, on loopback), a
download token from GraphQL, and the whole CSV from GET /downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import (
    LAUSD,
    REPO,
    GraphQLClient,
    Loaded,
    ServiceThread,
    TestDatabase,
    service_settings,
)
from support.idp import ProviderInfo, client_credentials_token, run_oidc_provider
from support.tokens import TestIssuer
from test_downloads import create_token, events_for_token, rows_of, token_id_of

from db.layouts import layout_for
from soars.settings import IssuerSettings

CLIENT_ID = "lausd-sis"
CLIENT_SECRET = "sis-secret-" + "s" * 32

STUDENT_PAGE = """
query($id: ID!, $after: String) {
  report(id: $id) {
    students(first: 500, after: $after, purpose: SYSTEM_INTEGRATION) {
      pageInfo { hasNextPage endCursor }
      edges { node { ssid } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def idp(issuer: TestIssuer) -> Iterator[ProviderInfo]:
    with run_oidc_provider(
        audience=issuer.audience,
        scopes=["soars.read"],
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_types": ["client_credentials"],
            }
        ],
    ) as info:
        yield info


@pytest.fixture(scope="module")
def idp_service(
    database: TestDatabase,
    loaded: Loaded,
    issuer: TestIssuer,
    idp: ProviderInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceThread]:
    """The service trusting the provider's issuer, as a deployment would."""
    settings = service_settings(
        database,
        issuer,
        tmp_path_factory.mktemp("idp-service"),
        issuers=(IssuerSettings(issuer=idp.issuer, jwks_url=idp.jwks_uri),),
    )
    with ServiceThread(settings) as running:
        yield running


def soars(database: TestDatabase, data_dir: Path, *args: str) -> str:
    """Run the `soars` command line as a state administrator would."""
    env = {
        **os.environ,
        "SOARS_MODE": "development",
        "SOARS_DATABASE_URL": database.owner_dsn,
        "SOARS_DATA_DIR": str(data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "soars.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def registered(
    idp: ProviderInfo,
    database: TestDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The integration's client id, assigned to LAUSD by the command line."""
    soars(
        database,
        tmp_path_factory.mktemp("cli"),
        "roles", "grant", "--issuer", idp.issuer, "--subject", CLIENT_ID,
        "--org", LAUSD, "--role", "accountability_coordinator",
    )  # fmt: skip
    return CLIENT_ID


async def test_an_integration_downloads_its_lea_file_with_a_token_from_the_real_provider(
    idp: ProviderInfo,
    idp_service: ServiceThread,
    registered: str,
    owner: asyncpg.Connection,
    issuer: TestIssuer,
) -> None:
    access_token = client_credentials_token(
        idp, CLIENT_ID, CLIENT_SECRET, resource=issuer.audience, scope="soars.read"
    )

    async with httpx.AsyncClient(base_url=idp_service.url, timeout=60) as http:
        gql = GraphQLClient(http, issuer)
        body = (
            await gql.query(
                "{ viewer { kind subject } reports(reportType: CCI) { edges { node {"
                " id organization { cdsCode } } } } }",
                token=access_token,
            )
        ).json()
        assert body["data"]["viewer"] == {"kind": "CLIENT", "subject": CLIENT_ID}
        [report] = [e["node"]["id"] for e in body["data"]["reports"]["edges"]]

        grant = await create_token(
            gql,
            report,
            token=access_token,
            purpose="SYSTEM_INTEGRATION",
            detail="nightly SIS import",
        )
        response = await http.get(
            "/downloads", headers={"Authorization": f"Bearer {grant['token']}"}
        )
        again = await http.get(
            "/downloads", headers={"Authorization": f"Bearer {grant['token']}"}
        )

        served: list[str] = []
        after = None
        for _ in range(100):
            page = (
                await gql.query(
                    STUDENT_PAGE, {"id": report, "after": after}, token=access_token
                )
            ).json()
            assert "errors" not in page, page
            students = page["data"]["report"]["students"]
            served.extend(edge["node"]["ssid"] for edge in students["edges"])
            after = students["pageInfo"]["endCursor"]
            if not students["pageInfo"]["hasNextPage"]:
                break

    assert response.status_code == 200, response.text
    header, *rows = rows_of(response.text)
    assert tuple(header) == layout_for("cci", 2019).columns
    assert len(rows) == 31_114
    assert [row[0] for row in rows] == served

    assert again.status_code == 410
    assert again.json()["error"]["code"] == "TOKEN_REDEEMED"

    events = await events_for_token(owner, await token_id_of(owner, grant["token"]))
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("report:download:issued", "granted"),
        ("report:download:started", "granted"),
        ("report:download:completed", "granted"),
        ("report:download:refused", "denied"),
    ]
    assert {e["actor_kind"] for e in events} == {"client"}
    assert {e["actor_subject"] for e in events} == {CLIENT_ID}
    assert {e["purpose"] for e in events} == {"system_integration"}
    assert {e["org_cds"] for e in events} == {LAUSD}
    completed = json.loads(events[2]["detail"])
    assert completed["rows"] == 31_114
    assert completed["bytes"] == len(response.content)
    assert (
        await owner.fetchval(
            "select actor_issuer from audit_events where id = $1",
            completed["started_event"],
        )
        == idp.issuer
    )


def _documented_script() -> str:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## A complete script", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_script_in_the_integration_guide_fetches_the_file(
    idp: ProviderInfo,
    idp_service: ServiceThread,
    registered: str,
    issuer: TestIssuer,
    tmp_path: Path,
) -> None:
    script = tmp_path / "fetch_report.py"
    script.write_text(_documented_script(), encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SOARS_URL": idp_service.url,
        "OIDC_TOKEN_URL": idp.token_endpoint,
        "SOARS_CLIENT_ID": CLIENT_ID,
        "SOARS_CLIENT_SECRET": CLIENT_SECRET,
        "SOARS_RESOURCE": issuer.audience,
        "SOARS_SCOPE": "soars.read",
        "SOARS_ORG": LAUSD,
        "SOARS_YEAR": "2019",
        "SOARS_OUT": str(tmp_path),
    }

    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    saved = tmp_path / f"soars-cci-2019-{LAUSD}-los-angeles-unified.csv"
    assert done.stdout.strip() == f"{saved}: 31114 students"
    with saved.open(encoding="utf-8") as file:
        assert sum(1 for _ in file) == 31_115
    assert not list(tmp_path.glob("*.partial"))
