"""Settings, read once from the environment and validated at start-up.

Every setting is an environment variable (see `docs/settings.md`). A bad
value stops the process with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(Exception):
    """A setting is missing or has a value the service cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """An OpenID Connect issuer whose access tokens the service accepts."""

    issuer: str
    jwks_url: str


@dataclass(frozen=True, slots=True)
class Settings:
    mode: Mode = Mode.DEVELOPMENT
    data_dir: Path = Path(".soars")
    database_url: str | None = None  # owner connection; None: embedded server
    runtime_database_url: str | None = None  # derived from database_url if unset
    owner_role: str = "soars_owner"
    runtime_role: str = "soars_app"
    runtime_password: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    audience: str = "soars"
    issuers: tuple[IssuerSettings, ...] = ()
    token_leeway: int = 30
    jwks_refetch_interval: float = 30.0
    jwks_max_stale: float = 3600.0
    page_size_max: int = 500
    pool_min: int = 2
    pool_max: int = 10
    secret_key: str | None = None  # seals cursors; generated in dev if unset
    graphiql: bool = False
    cde_data: Path = field(default=Path("../shared/data/cde"))

    @property
    def dev_issuer(self) -> str:
        return self.public_url.rstrip("/") + "/dev"

    @property
    def is_development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(name, f"expected true or false, got {raw!r}")


def _url(env: Mapping[str, str], name: str, *, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.netloc or parts.query):
        raise SettingsError(name, f"expected a URL starting with {' or '.join(schemes)}")
    return raw


def _issuers(env: Mapping[str, str]) -> tuple[IssuerSettings, ...]:
    # SOARS_OIDC_ISSUER may name several issuers, separated by spaces; each
    # one's JWKS is found at SOARS_OIDC_JWKS_URL (same order) or, by default,
    # at <issuer>/.well-known/jwks.json, as most providers publish it.
    issuers = env.get("SOARS_OIDC_ISSUER", "").split()
    jwks = env.get("SOARS_OIDC_JWKS_URL", "").split()
    if jwks and len(jwks) != len(issuers):
        raise SettingsError(
            "SOARS_OIDC_JWKS_URL",
            f"names {len(jwks)} URLs for {len(issuers)} issuers in SOARS_OIDC_ISSUER",
        )
    result = []
    for index, issuer in enumerate(issuers):
        if urlsplit(issuer).scheme not in ("https", "http"):
            raise SettingsError("SOARS_OIDC_ISSUER", f"{issuer!r} is not an http(s) URL")
        url = jwks[index] if jwks else issuer.rstrip("/") + "/.well-known/jwks.json"
        result.append(IssuerSettings(issuer=issuer, jwks_url=url))
    return tuple(result)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every SOARS_* variable."""
    env = os.environ if env is None else env

    raw_mode = env.get("SOARS_MODE", "development").strip().lower()
    try:
        mode = Mode(raw_mode)
    except ValueError:
        raise SettingsError(
            "SOARS_MODE", f"expected development or production, got {raw_mode!r}"
        ) from None

    port = _int(env, "SOARS_PORT", 8000, 1, 65535)
    host = env.get("SOARS_HOST", "127.0.0.1")
    public_url = _url(env, "SOARS_PUBLIC_URL", schemes=("http", "https"))
    settings = Settings(
        mode=mode,
        data_dir=Path(env.get("SOARS_DATA_DIR", ".soars")),
        database_url=_url(env, "SOARS_DATABASE_URL", schemes=("postgresql", "postgres")),
        runtime_database_url=_url(
            env, "SOARS_RUNTIME_DATABASE_URL", schemes=("postgresql", "postgres")
        ),
        runtime_password=env.get("SOARS_RUNTIME_PASSWORD") or None,
        host=host,
        port=port,
        public_url=public_url or f"http://{host}:{port}",
        audience=env.get("SOARS_OIDC_AUDIENCE", "soars"),
        issuers=_issuers(env),
        token_leeway=_int(env, "SOARS_TOKEN_LEEWAY", 30, 0, 300),
        page_size_max=_int(env, "SOARS_PAGE_SIZE_MAX", 500, 1, 5000),
        pool_min=_int(env, "SOARS_POOL_MIN", 2, 1, 100),
        pool_max=_int(env, "SOARS_POOL_MAX", 10, 1, 500),
        secret_key=env.get("SOARS_SECRET_KEY") or None,
        graphiql=_bool(env, "SOARS_GRAPHIQL", mode is Mode.DEVELOPMENT),
        cde_data=Path(env.get("SOARS_CDE_DATA", "../shared/data/cde")),
    )
    _check_production(settings)
    return settings


def _check_production(settings: Settings) -> None:
    if settings.mode is not Mode.PRODUCTION:
        return
    if not settings.issuers:
        raise SettingsError(
            "SOARS_OIDC_ISSUER",
            "production mode needs the identity provider's issuer URL; the "
            "development issuer is refused",
        )
    if settings.database_url is None and settings.runtime_database_url is None:
        raise SettingsError(
            "SOARS_DATABASE_URL",
            "production mode needs a PostgreSQL server; the embedded one is for "
            "development",
        )
    if settings.secret_key is None or len(settings.secret_key) < 32:
        raise SettingsError(
            "SOARS_SECRET_KEY", "production mode needs a secret of 32 characters or more"
        )
    if settings.graphiql:
        raise SettingsError("SOARS_GRAPHIQL", "GraphiQL is refused in production mode")
