"""Run the loopback OpenID provider in ``tests/idp`` for the test suite.

The provider is the certified ``oidc-provider`` npm package (see
``tests/idp/server.mjs``). It needs ``node`` and ``npm`` on ``PATH``; its
dependencies are installed with ``npm ci`` on first use.

Typical pytest use::

    @pytest.fixture(scope="session")
    def idp() -> Iterator[ProviderInfo]:
        with run_oidc_provider(
            audience="https://soars.test/api",
            scopes=["soars.read"],
            clients=[{"client_id": "svc", "client_secret": "s3cret"}],
        ) as info:
            yield info

    token = client_credentials_token(
        idp, "svc", "s3cret", resource="https://soars.test/api", scope="soars.read"
    )
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NotRequired, TypedDict
from urllib.parse import quote

import httpx

__all__ = [
    "ClientSpec",
    "IdpError",
    "ProviderInfo",
    "TokenRequestError",
    "UserSpec",
    "client_credentials_token",
    "fetch_jwks",
    "run_oidc_provider",
]

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
READY_TIMEOUT_S = 30.0
NPM_CI_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0
_CONFIG_ENV = "SOARS_TEST_IDP_CONFIG"
_STAMP_NAME = ".soars-idp-lock.sha256"  # lives inside node_modules


class ClientSpec(TypedDict):
    """An OAuth client registered with the provider."""

    client_id: str
    client_secret: NotRequired[str]  # omit for a public (PKCE-only) client
    grant_types: NotRequired[list[str]]  # default ["client_credentials"]
    redirect_uris: NotRequired[list[str]]  # needed for authorization_code
    scope: NotRequired[str]  # restricts the scopes this client may ask for
    token_endpoint_auth_method: NotRequired[str]


class UserSpec(TypedDict):
    """A test user that the dev interaction can sign in as ``?login=<accountId>``."""

    accountId: str
    claims: NotRequired[dict[str, Any]]


@dataclass(frozen=True)
class ProviderInfo:
    """Endpoints of a running provider, read from its discovery document."""

    issuer: str
    jwks_uri: str
    token_endpoint: str
    port: int
    authorization_endpoint: str = ""


class IdpError(RuntimeError):
    """The test OpenID provider could not be installed or started."""


class TokenRequestError(Exception):
    """The token endpoint answered with an OAuth error."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(f"HTTP {status_code} {error}: {description}")
        self.status_code = status_code
        self.error = error
        self.description = description


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise IdpError(
            f"`{name}` was not found on PATH: the test OpenID provider in "
            f"{IDP_DIR} needs Node.js (`node`, version 20 or later) and `npm`; "
            "install them, e.g. `apt-get install nodejs npm`."
        )
    return path


def _lock_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def ensure_node_modules(folder: Path = IDP_DIR) -> None:
    """Run ``npm ci`` in ``folder`` unless node_modules matches the lock file."""
    node_modules = folder / "node_modules"
    stamp = node_modules / _STAMP_NAME
    wanted = _lock_digest(folder)
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return
    npm = _require_tool("npm")
    # Serialise installs between concurrent test processes (e.g. xdist workers).
    lock_id = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"soars-idp-npm-{lock_id}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text().strip() == wanted:
            return
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise IdpError(f"`npm ci` in {folder} timed out") from exc
        if done.returncode != 0:
            raise IdpError(
                f"`npm ci` in {folder} failed with exit code {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        stamp.write_text(wanted + "\n")


def _pump_stdout(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    # Keeps draining the pipe after READY so the server never blocks on it.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(
    proc: subprocess.Popen[str], lines: queue.Queue[str | None], stderr_path: Path
) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reason = f"did not print READY within {READY_TIMEOUT_S:.0f} s"
            break
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            proc.wait()
            reason = f"exited with code {proc.returncode} before READY"
            break
        if line.startswith("READY "):
            return line.removeprefix("READY ").strip()
    _stop(proc)
    raise IdpError(
        f"test OpenID provider ({IDP_DIR / 'server.mjs'}) {reason}; its stderr:\n"
        f"{_read_text(stderr_path)}"
    )


def _discover(issuer: str, port: int) -> ProviderInfo:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with httpx.Client(timeout=10.0) as http:
        response = http.get(url)
        response.raise_for_status()
        meta = response.json()
    if meta.get("issuer") != issuer:
        raise IdpError(f"discovery issuer {meta.get('issuer')!r} != {issuer!r}")
    return ProviderInfo(
        issuer=meta["issuer"],
        jwks_uri=meta["jwks_uri"],
        token_endpoint=meta["token_endpoint"],
        port=port,
        authorization_endpoint=meta.get("authorization_endpoint", ""),
    )


@contextlib.contextmanager
def run_oidc_provider(
    *,
    audience: str,
    clients: Sequence[ClientSpec | Mapping[str, Any]],
    users: Sequence[UserSpec | Mapping[str, Any]] = (),
    port: int | None = None,
    scopes: Sequence[str] = (),
    access_token_ttl: int = 300,
) -> Iterator[ProviderInfo]:
    """Start the provider on 127.0.0.1 and stop it when the block exits.

    ``audience`` is the API's resource identifier: access tokens requested with
    ``resource=<audience>`` are RS256 JWTs (``typ: at+jwt``) with that ``aud``.
    ``scopes`` are the API scopes the provider may grant. With ``port=None`` the
    server binds port 0, so the kernel picks a free port with no race.
    """
    node = _require_tool("node")
    ensure_node_modules()
    config = {
        "port": 0 if port is None else port,
        "audience": audience,
        "scopes": list(scopes),
        "access_token_ttl": access_token_ttl,
        "clients": [dict(c) for c in clients],
        "users": [dict(u) for u in users],
    }
    # Config (with client secrets) goes by environment, not argv or a file.
    env = {**os.environ, _CONFIG_ENV: json.dumps(config)}
    with tempfile.TemporaryDirectory(prefix="soars-idp-") as tmp:
        stderr_path = Path(tmp) / "stderr.log"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [node, "server.mjs", "--env", _CONFIG_ENV],
                cwd=IDP_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        pump = threading.Thread(
            target=_pump_stdout, args=(proc.stdout, lines), daemon=True
        )
        pump.start()
        try:
            issuer = _wait_ready(proc, lines, stderr_path)
            actual_port = httpx.URL(issuer).port
            if actual_port is None:
                raise IdpError(f"issuer {issuer!r} has no port")
            yield _discover(issuer, actual_port)
        finally:
            _stop(proc)
            pump.join(timeout=STOP_TIMEOUT_S)
            proc.stdout.close()


def fetch_jwks(info: ProviderInfo) -> dict[str, Any]:
    """Return the provider's public JWK set (``{"keys": [...]}``)."""
    with httpx.Client(timeout=10.0) as http:
        response = http.get(info.jwks_uri)
        response.raise_for_status()
        jwks: dict[str, Any] = response.json()
    return jwks


def client_credentials_token(
    info: ProviderInfo,
    client_id: str,
    client_secret: str,
    *,
    resource: str,
    scope: str | None,
    auth_method: Literal[
        "client_secret_basic", "client_secret_post"
    ] = "client_secret_basic",
) -> str:
    """Get an access token with the client-credentials grant.

    Raises :class:`TokenRequestError` when the provider refuses the request
    (e.g. ``invalid_client`` with HTTP 401 for a wrong secret).
    """
    form = {"grant_type": "client_credentials", "resource": resource}
    if scope:
        form["scope"] = scope
    auth: httpx.BasicAuth | None = None
    if auth_method == "client_secret_basic":
        # RFC 6749 2.3.1: id and secret are form-urlencoded inside Basic auth.
        auth = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
    else:
        form |= {"client_id": client_id, "client_secret": client_secret}
    with httpx.Client(timeout=10.0, auth=auth) as http:
        response = http.post(info.token_endpoint, data=form)
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        raise TokenRequestError(
            response.status_code,
            str(body.get("error", "")) if isinstance(body, dict) else "",
            str(body.get("error_description", response.text))
            if isinstance(body, dict)
            else response.text,
        )
    token = body.get("access_token")
    if not isinstance(token, str):
        raise TokenRequestError(response.status_code, "", "no access_token in reply")
    return token
