"""Settings, read once from the environment and validated at start-up.

Every setting is an environment variable (see `docs/settings.md`). A bad
value stops the process with a message that names the variable.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from db.pool import STATE_TIME_ZONE


class SettingsError(Exception):
    """A setting is missing or has a value the service cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


# A download link is a bearer credential: however it is configured, it lives
# at most an hour (migration 0003 holds the same bound).
DOWNLOAD_TOKEN_TTL_MAX = 3600


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """An OpenID Connect issuer whose access tokens the service accepts."""

    issuer: str
    jwks_url: str


@dataclass(frozen=True, slots=True)
class PortalSettings:
    """How the web portal signs people in (OpenID Connect, code flow + PKCE)."""

    client_id: str | None = None  # None: only development sign-in, if any
    client_secret: str | None = field(default=None, repr=False)  # None: public
    issuer: str | None = None  # must be one of the accepted issuers
    scope: str = "openid profile email"
    resource: str | None = None  # RFC 8707 resource indicator, if the IdP needs one
    idle_minutes: int = 30


@dataclass(frozen=True, slots=True)
class Settings:
    mode: Mode = Mode.DEVELOPMENT
    data_dir: Path = Path(".soars")
    # URLs and secrets stay out of repr(): settings get printed while debugging.
    database_url: str | None = field(default=None, repr=False)  # None: embedded
    runtime_database_url: str | None = field(default=None, repr=False)  # derived
    owner_role: str = "soars_owner"
    runtime_role: str = "soars_app"
    runtime_password: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    audience: str = "soars"
    issuers: tuple[IssuerSettings, ...] = ()
    token_leeway: int = 30
    jwks_refetch_interval: float = 30.0
    jwks_max_stale: float = 3600.0
    page_size_max: int = 500
    download_token_ttl: int = 300  # seconds; capped at DOWNLOAD_TOKEN_TTL_MAX
    download_timeout: int = 3600  # seconds one download may take, slow clients too
    # Links that open nothing, per client address and minute, before 429s.
    download_guesses_per_minute: int = 30
    # Whose calendar end dates follow: a release "available until" a day can
    # be read through that day in the state, whatever zone the machines use.
    time_zone: str = STATE_TIME_ZONE
    pool_min: int = 2
    pool_max: int = 10
    # Seals cursors; generated per data directory in development if unset.
    secret_key: str | None = field(default=None, repr=False)
    graphiql: bool = False
    # Abuse limits (see soars/guards.py and schema/limits.py).
    max_request_bytes: int = 64 * 1024
    query_tokens_max: int = 2000
    query_depth_max: int = 10
    query_aliases_max: int = 30
    query_cost_max: int = 10_000
    cors_origins: tuple[str, ...] = ()
    # Proxies whose X-Forwarded-For/-Proto are believed (addresses or
    # networks); none by default, so a client cannot claim another address.
    trusted_proxies: tuple[str, ...] = ()
    cde_data: Path = field(default=Path("../shared/data/cde"))
    # Audit checkpoints: the Ed25519 key that signs them (a PEM file), the
    # public key that verifies them, and how often `soars serve` makes one.
    audit_signing_key: Path | None = None  # None: generated per data dir in dev
    audit_public_key: Path | None = None  # None: derived from the signing key
    audit_checkpoint_interval: int = 0  # seconds; 0: only `soars audit checkpoint`
    portal: PortalSettings = field(default_factory=PortalSettings)

    @property
    def dev_issuer(self) -> str:
        return self.public_url.rstrip("/") + "/dev"

    @property
    def is_development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    def today(self) -> date:
        """The date in the state now: what end dates are compared with. The
        database sessions use the same zone, so SQL's current_date agrees."""
        return datetime.now(ZoneInfo(self.time_zone)).date()


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
        raise SettingsError(
            name, f"expected a URL starting with {' or '.join(schemes)}"
        )
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
            raise SettingsError(
                "SOARS_OIDC_ISSUER", f"{issuer!r} is not an http(s) URL"
            )
        url = jwks[index] if jwks else issuer.rstrip("/") + "/.well-known/jwks.json"
        if not _trusted_transport(url):
            # The JWKS decides which signatures are trusted: anyone on the
            # path of a plain-http fetch could substitute their own keys.
            raise SettingsError(
                "SOARS_OIDC_JWKS_URL" if jwks else "SOARS_OIDC_ISSUER",
                f"the signing keys at {url!r} must be fetched over https "
                "(plain http only from this machine)",
            )
        result.append(IssuerSettings(issuer=issuer, jwks_url=url))
    return tuple(result)


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _trusted_transport(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and _is_loopback(parts.hostname)


_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = []
    for item in env.get(name, "").split(","):
        if not item.strip():
            continue
        try:
            found.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise SettingsError(
                name, f"expected IP addresses or networks (10.0.0.0/8), got {item!r}"
            ) from None
    return tuple(found)


def _zone(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            name, f"expected an IANA time zone such as America/Los_Angeles, got {raw!r}"
        ) from None
    return raw


def _role(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    if not _ROLE_NAME.match(raw):
        raise SettingsError(
            name,
            f"expected a PostgreSQL role name of lower-case letters, digits and _, "
            f"got {raw!r}",
        )
    return raw


def _seconds(
    env: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(
            name, f"expected a number of seconds, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise SettingsError(
            name, f"must be between {low:g} and {high:g}, got {value:g}"
        )
    return value


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    # Browsers compare origins as scheme://host[:port], exactly; a wildcard
    # would let any site's scripts read the answers.
    origins = []
    for raw in env.get(name, "").replace(",", " ").split():
        parts = urlsplit(raw)
        if raw == "*" or parts.scheme not in ("https", "http") or not parts.hostname:
            raise SettingsError(
                name, f"expected origins like https://portal.example.org, got {raw!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SettingsError(name, f"an origin has no path or query, got {raw!r}")
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(origins)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


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
        database_url=_url(
            env, "SOARS_DATABASE_URL", schemes=("postgresql", "postgres")
        ),
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
        # The JWKS cache keeps a key set 300 s; these must bracket that.
        jwks_refetch_interval=_seconds(env, "SOARS_JWKS_REFETCH_INTERVAL", 30, 0, 300),
        jwks_max_stale=_seconds(env, "SOARS_JWKS_MAX_STALE", 3600, 300, 86400),
        owner_role=_role(env, "SOARS_OWNER_ROLE", "soars_owner"),
        runtime_role=_role(env, "SOARS_RUNTIME_ROLE", "soars_app"),
        page_size_max=_int(env, "SOARS_PAGE_SIZE_MAX", 500, 1, 5000),
        download_token_ttl=_int(
            env, "SOARS_DOWNLOAD_TOKEN_TTL", 300, 10, DOWNLOAD_TOKEN_TTL_MAX
        ),
        download_timeout=_int(env, "SOARS_DOWNLOAD_TIMEOUT", 3600, 10, 86400),
        download_guesses_per_minute=_int(
            env, "SOARS_DOWNLOAD_GUESSES_PER_MINUTE", 30, 1, 100_000
        ),
        time_zone=_zone(env, "SOARS_TIME_ZONE", STATE_TIME_ZONE),
        pool_min=_int(env, "SOARS_POOL_MIN", 2, 1, 100),
        pool_max=_int(env, "SOARS_POOL_MAX", 10, 1, 500),
        secret_key=env.get("SOARS_SECRET_KEY") or None,
        graphiql=_bool(env, "SOARS_GRAPHIQL", mode is Mode.DEVELOPMENT),
        max_request_bytes=_int(
            env, "SOARS_MAX_REQUEST_BYTES", 64 * 1024, 1024, 16 << 20
        ),
        query_tokens_max=_int(env, "SOARS_QUERY_TOKENS_MAX", 2000, 100, 100_000),
        query_depth_max=_int(env, "SOARS_QUERY_DEPTH_MAX", 10, 3, 100),
        query_aliases_max=_int(env, "SOARS_QUERY_ALIASES_MAX", 30, 0, 1000),
        query_cost_max=_int(env, "SOARS_QUERY_COST_MAX", 10_000, 1, 10_000_000),
        cors_origins=_origins(env, "SOARS_CORS_ORIGINS"),
        trusted_proxies=_networks(env, "SOARS_TRUSTED_PROXIES"),
        cde_data=Path(env.get("SOARS_CDE_DATA", "../shared/data/cde")),
        audit_signing_key=_path(env, "SOARS_AUDIT_SIGNING_KEY"),
        audit_public_key=_path(env, "SOARS_AUDIT_PUBLIC_KEY"),
        audit_checkpoint_interval=_int(
            env, "SOARS_AUDIT_CHECKPOINT_INTERVAL", 0, 0, 7 * 86400
        ),
        portal=_portal(env, _issuers(env)),
    )
    _check_consistent(settings)
    _check_production(settings)
    _check_misspelled(env)
    return settings


#: Every variable this module reads: each name it spells out, some of them
#: read only when another is set (the portal's client secret, say).
VARIABLES: frozenset[str] = frozenset(
    re.findall(r'"(SOARS_[A-Z0-9_]+)"', Path(__file__).read_text(encoding="utf-8"))
)


def _check_misspelled(env: Mapping[str, str]) -> None:
    # A misspelt variable is otherwise silently ignored and its default used.
    # Only near-misses of a real name are refused: other SOARS_* variables
    # may belong to the deployment's own tooling.
    for name in sorted(env):
        if not name.startswith("SOARS_") or name in VARIABLES:
            continue
        close = difflib.get_close_matches(name, sorted(VARIABLES), n=1, cutoff=0.85)
        if close:
            raise SettingsError(name, f"is not a setting; did you mean {close[0]}?")


def _check_consistent(settings: Settings) -> None:
    if settings.pool_min > settings.pool_max:
        raise SettingsError(
            "SOARS_POOL_MIN",
            f"{settings.pool_min} is more than SOARS_POOL_MAX ({settings.pool_max})",
        )
    if settings.owner_role == settings.runtime_role:
        raise SettingsError(
            "SOARS_RUNTIME_ROLE",
            "must differ from SOARS_OWNER_ROLE: the service must not own the tables "
            "it writes audit events to",
        )
    if not settings.audience.strip():
        raise SettingsError("SOARS_OIDC_AUDIENCE", "must not be empty")


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
            "SOARS_SECRET_KEY",
            "production mode needs a secret of 32 characters or more",
        )
    if settings.graphiql:
        raise SettingsError("SOARS_GRAPHIQL", "GraphiQL is refused in production mode")
    if settings.audit_signing_key is None:
        # Checkpoints signed with the development key (generated in the data
        # directory, beside everything else) would prove nothing.
        raise SettingsError(
            "SOARS_AUDIT_SIGNING_KEY",
            "production mode needs the path of the audit checkpoint signing key "
            "(an Ed25519 PEM file); the development key is refused",
        )
    configured = {issuer.issuer.rstrip("/") for issuer in settings.issuers}
    if settings.dev_issuer in configured:
        raise SettingsError(
            "SOARS_OIDC_ISSUER",
            "names the development issuer, which production mode refuses",
        )
    if not _trusted_transport(settings.public_url):
        # Download links are built from it and carry a bearer token.
        raise SettingsError(
            "SOARS_PUBLIC_URL",
            f"production mode needs the https URL clients reach the service at, "
            f"got {settings.public_url!r}",
        )


def _portal(
    env: Mapping[str, str], issuers: tuple[IssuerSettings, ...]
) -> PortalSettings:
    idle = _int(env, "SOARS_PORTAL_IDLE_MINUTES", 30, 5, 720)
    client_id = env.get("SOARS_PORTAL_CLIENT_ID", "").strip() or None
    issuer = env.get("SOARS_PORTAL_ISSUER", "").strip() or None
    secret = env.get("SOARS_PORTAL_CLIENT_SECRET") or None
    scope = env.get("SOARS_PORTAL_SCOPE", "").strip() or "openid profile email"
    resource = _url(env, "SOARS_PORTAL_RESOURCE", schemes=("https", "http"))
    if client_id is None:
        return PortalSettings(idle_minutes=idle)
    accepted = [known.issuer for known in issuers]
    if issuer is None and accepted:
        issuer = accepted[0]
    if issuer is None or issuer not in accepted:
        # The portal calls the API with the token it signs people in for, so
        # that token's issuer must be one the API accepts.
        raise SettingsError(
            "SOARS_PORTAL_ISSUER",
            "must be one of the issuers in SOARS_OIDC_ISSUER "
            f"({' '.join(accepted) or 'none is set'})",
        )
    return PortalSettings(
        client_id=client_id,
        client_secret=secret,
        issuer=issuer,
        scope=scope,
        resource=resource,
        idle_minutes=idle,
    )
