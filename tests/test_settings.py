"""Settings come from SOARS_* variables, are checked at start-up, and a bad
one stops the service with a message that names it. Production mode refuses
what is only safe on a developer's machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from soars.settings import VARIABLES, Mode, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]

PRODUCTION = {
    "SOARS_MODE": "production",
    "SOARS_OIDC_ISSUER": "https://login.cde.example/realms/soars",
    "SOARS_RUNTIME_DATABASE_URL": "postgresql://soars_app:pw@db.internal:5432/soars",
    "SOARS_SECRET_KEY": "k" * 43,
    "SOARS_PUBLIC_URL": "https://soars.cde.example",
    "SOARS_AUDIT_SIGNING_KEY": "/run/secrets/audit_signing_key",
}


def _refusal(env: Mapping[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    return caught.value


@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("SOARS_MODE", "staging", {}),
        ("SOARS_PORT", "eighty", {}),
        ("SOARS_PORT", "70000", {}),
        ("SOARS_DATABASE_URL", "mysql://root@db/soars", {}),
        ("SOARS_RUNTIME_DATABASE_URL", "db.internal:5432", {}),
        ("SOARS_PUBLIC_URL", "ftp://soars.example", {}),
        ("SOARS_OIDC_ISSUER", "login.cde.example", {}),
        ("SOARS_OIDC_ISSUER", "http://login.cde.example", {}),
        (
            "SOARS_OIDC_JWKS_URL",
            "http://login.cde.example/jwks",
            {"SOARS_OIDC_ISSUER": "https://login.cde.example"},
        ),
        (
            "SOARS_OIDC_JWKS_URL",
            "https://a.example/jwks https://b.example/jwks",
            {"SOARS_OIDC_ISSUER": "https://a.example"},
        ),
        ("SOARS_OIDC_AUDIENCE", "   ", {}),
        ("SOARS_TOKEN_LEEWAY", "301", {}),
        ("SOARS_JWKS_REFETCH_INTERVAL", "soon", {}),
        ("SOARS_JWKS_MAX_STALE", "60", {}),
        ("SOARS_PAGE_SIZE_MAX", "0", {}),
        ("SOARS_POOL_MAX", "-1", {}),
        ("SOARS_POOL_MIN", "20", {"SOARS_POOL_MAX": "10"}),
        ("SOARS_GRAPHIQL", "maybe", {}),
        ("SOARS_OWNER_ROLE", "Robert'); drop table", {}),
        ("SOARS_RUNTIME_ROLE", "soars_owner", {}),
        ("SOARS_DOWNLOAD_TOKEN_TTL", "86400", {}),
        ("SOARS_DATABSE_URL", "postgresql://db/soars", {}),
        ("SOARS_OIDC_ISSUERS", "https://login.cde.example", {}),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    variable: str, value: str, extra: dict[str, str]
) -> None:
    error = _refusal({**extra, variable: value})

    assert error.variable == variable
    assert str(error).startswith(f"{variable}: ")


def test_a_misspelt_variable_is_answered_with_the_real_name() -> None:
    error = _refusal({"SOARS_DATABSE_URL": "postgresql://db/soars"})

    assert "did you mean SOARS_DATABASE_URL" in str(error)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SOARS_DATABASE_URL", "mysql://owner:hunter2-secret@db/soars"),
        ("SOARS_RUNTIME_DATABASE_URL", "soars_app:hunter2-secret@db"),
    ],
)
def test_a_refusal_never_repeats_a_password(variable: str, value: str) -> None:
    error = _refusal({variable: value})

    assert "hunter2" not in str(error)


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = load_settings(
        {**PRODUCTION, "SOARS_DATABASE_URL": "postgresql://postgres:hunter2@db/soars"}
    )

    assert "hunter2" not in repr(settings)
    assert PRODUCTION["SOARS_SECRET_KEY"] not in repr(settings)
    assert "soars_app:pw" not in repr(settings)


def test_nothing_set_is_a_working_development_configuration() -> None:
    settings = load_settings({})

    assert settings.mode is Mode.DEVELOPMENT
    assert settings.database_url is None  # the embedded server
    assert settings.graphiql
    assert settings.public_url == "http://127.0.0.1:8000"


def test_production_with_its_required_settings_starts() -> None:
    settings = load_settings(PRODUCTION)

    assert settings.mode is Mode.PRODUCTION
    assert not settings.graphiql
    assert [i.jwks_url for i in settings.issuers] == [
        "https://login.cde.example/realms/soars/.well-known/jwks.json"
    ]


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in PRODUCTION.items() if k != name}


PRODUCTION_REFUSALS = [
    # (what is refused, the settings, the variable named, a word of the reason)
    (
        "the development issuer (no issuer configured)",
        _without("SOARS_OIDC_ISSUER"),
        "SOARS_OIDC_ISSUER",
        "development issuer",
    ),
    (
        "the development issuer named explicitly",
        {**PRODUCTION, "SOARS_OIDC_ISSUER": "https://soars.cde.example/dev"},
        "SOARS_OIDC_ISSUER",
        "development issuer",
    ),
    (
        "GraphiQL on",
        {**PRODUCTION, "SOARS_GRAPHIQL": "true"},
        "SOARS_GRAPHIQL",
        "GraphiQL",
    ),
    (
        "the embedded database",
        _without("SOARS_RUNTIME_DATABASE_URL"),
        "SOARS_DATABASE_URL",
        "embedded",
    ),
    ("no cursor secret", _without("SOARS_SECRET_KEY"), "SOARS_SECRET_KEY", "32"),
    (
        "a short cursor secret",
        {**PRODUCTION, "SOARS_SECRET_KEY": "changeme"},
        "SOARS_SECRET_KEY",
        "32",
    ),
    (
        "no audit signing key (the development key)",
        _without("SOARS_AUDIT_SIGNING_KEY"),
        "SOARS_AUDIT_SIGNING_KEY",
        "development key",
    ),
    (
        "download links over plain http",
        {**PRODUCTION, "SOARS_PUBLIC_URL": "http://soars.cde.example"},
        "SOARS_PUBLIC_URL",
        "https",
    ),
]


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [pytest.param(*row[1:], id=row[0]) for row in PRODUCTION_REFUSALS],
)
def test_production_refuses_development_settings(
    env: dict[str, str], variable: str, says: str
) -> None:
    error = _refusal(env)

    assert error.variable == variable
    assert says in str(error)


def test_the_same_settings_are_accepted_in_development() -> None:
    relaxed = {**_without("SOARS_OIDC_ISSUER"), "SOARS_MODE": "development"}
    relaxed["SOARS_GRAPHIQL"] = "true"
    relaxed["SOARS_SECRET_KEY"] = "changeme"

    assert load_settings(relaxed).graphiql


def _clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOARS_")}
    return {**env, **variables}


@pytest.mark.parametrize(
    ("command", "env", "variable"),
    [
        (["serve"], {"SOARS_MODE": "production"}, "SOARS_OIDC_ISSUER"),
        (["serve"], {"SOARS_PORT": "eighty"}, "SOARS_PORT"),
        (["db", "migrate"], {**PRODUCTION, "SOARS_GRAPHIQL": "on"}, "SOARS_GRAPHIQL"),
    ],
)
def test_the_command_line_stops_at_start_up_naming_the_variable(
    command: list[str], env: dict[str, str], variable: str
) -> None:
    finished = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "soars.cli", *command],
        env=_clean_env(**env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 1
    assert finished.stderr.startswith(f"soars: configuration error: {variable}: ")
    assert "Traceback" not in finished.stderr


# -- the documentation of every setting -------------------------------------


def _variables_read() -> set[str]:
    return set(VARIABLES)


def _documented(path: Path) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `SOARS_"):
            yield from re.findall(r"`(SOARS_[A-Z0-9_]+)`", line.split("|")[1])


def _in_env_example() -> set[str]:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*(SOARS_[A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_setting_is_in_the_settings_table_and_nothing_else_is() -> None:
    documented = set(_documented(REPO / "docs" / "settings.md"))

    assert _variables_read() - documented == set()
    assert documented - _variables_read() == set()


def test_every_setting_is_in_the_env_example() -> None:
    assert _variables_read() - _in_env_example() == set()


def test_the_env_example_sets_no_owner_password_for_the_service() -> None:
    # compose.yaml gives the owner URL to the one-shot migration only.
    text = (REPO / ".env.example").read_text(encoding="utf-8")

    assert not re.search(r"^SOARS_DATABASE_URL=", text, flags=re.MULTILINE)
