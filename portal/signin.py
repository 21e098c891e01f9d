"""Signing in and out.

People sign in at their identity provider with OpenID Connect: the
authorization code flow with PKCE (S256), through authlib's Starlette client.
The state, nonce and code verifier of a sign-in in progress live in the signed
session cookie until the provider sends the person back.

The access token the provider returns is checked by the same verifier the API
uses (signature against the issuer's JWKS, issuer, audience, expiry) before a
session is opened: the portal never trusts a token the API would refuse, and
the session's subject is the token's, not the ID token's claim.

Development mode adds a sign-in as one of the sample users, with tokens from
the development issuer; the route does not exist in production mode.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth.errors import AuthenticationError
from auth.tokens import Claims
from portal.errors import PageNotFound, SignInFailed
from portal.render import render
from portal.web import end_session, field, start_session, store
from soars.devdata import DEMO_USERS
from soars.settings import Settings

log = logging.getLogger("soars.portal")

with warnings.catch_warnings():
    # authlib 1.9 prefers the `httpx2` package and warns, on every start, when
    # it falls back to httpx; the fallback is the same client this service
    # already uses and is what the portal's sign-in tests run against. (Its
    # deprecate module installs an "always" filter when first imported, so
    # that import comes first, and this filter then goes in front of it.)
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth

_NEXT_KEY = "next"


def safe_next(value: str | None) -> str:
    """A path on this site to return to after signing in; `/` for anything else."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(char) < 0x20 for char in value)
    ):
        return "/"
    return value


def _client(request: Request) -> Any:
    """The OpenID Connect client, built once per service; None if not configured."""
    state = request.app.state
    if not hasattr(state, "portal_oidc"):
        settings: Settings = state.services.settings
        state.portal_oidc = _build_client(settings)
    return state.portal_oidc


def _build_client(settings: Settings) -> Any:
    portal = settings.portal
    if portal.client_id is None or portal.issuer is None:
        return None
    oauth = OAuth()
    oauth.register(
        "soars",
        client_id=portal.client_id,
        client_secret=portal.client_secret,
        server_metadata_url=portal.issuer.rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": portal.scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": (
                "client_secret_basic" if portal.client_secret else "none"
            ),
            "timeout": 10.0,
        },
    )
    return oauth.create_client("soars")


async def start(request: Request) -> Response:
    client = _client(request)
    if client is None:
        raise PageNotFound(
            "Signing in through an identity provider is not set up on this "
            "service (SOARS_PORTAL_CLIENT_ID)."
        )
    request.session[_NEXT_KEY] = safe_next(request.query_params.get("next"))
    settings: Settings = request.app.state.services.settings
    redirect_uri = settings.public_url.rstrip("/") + "/signin/callback"
    extra = {"resource": settings.portal.resource} if settings.portal.resource else {}
    try:
        response: Response = await client.authorize_redirect(
            request, redirect_uri, **extra
        )
    except (httpx.HTTPError, AuthlibBaseError, ValueError) as error:
        log.warning(
            "identity provider unreachable", extra={"error": type(error).__name__}
        )
        raise SignInFailed(
            "Your organization's sign-in service could not be reached. Please try "
            "again in a few minutes."
        ) from None
    return response


async def callback(request: Request) -> Response:
    client = _client(request)
    if client is None:
        raise PageNotFound("Signing in through an identity provider is not set up.")
    refused = request.query_params.get("error")
    if refused:
        raise SignInFailed(
            f"The sign-in service did not sign you in ({_short(refused)}). "
            "You can try again."
        )
    try:
        token = await client.authorize_access_token(request)
    except (
        httpx.HTTPError,
        AuthlibBaseError,
        ValueError,
        KeyError,
        TypeError,
    ) as error:
        log.warning("sign-in callback failed", extra={"error": type(error).__name__})
        raise SignInFailed(
            "This sign-in could not be completed: it may have taken too long, or "
            "been started in another window. Please sign in again."
        ) from None

    access_token = token.get("access_token")
    if not isinstance(access_token, str):
        raise SignInFailed("The sign-in service did not send an access token.")
    userinfo = token.get("userinfo") or {}
    return await _open_session(request, access_token, _display_name(userinfo))


async def development(request: Request) -> Response:
    services = request.app.state.services
    if not services.settings.is_development or services.dev_issuer is None:
        raise PageNotFound("Sample users exist only in development mode.")
    if request.method == "GET":
        return render(
            request,
            "dev_signin.html",
            title="Sign in as a sample user",
            users=DEMO_USERS,
            next=safe_next(request.query_params.get("next")),
        )

    subject = field(request, "subject")
    if subject not in {user[0] for user in DEMO_USERS}:
        raise SignInFailed("Choose one of the sample users listed.")
    request.session[_NEXT_KEY] = safe_next(field(request, "next"))
    name = subject.replace("-", " ").title()
    token = services.dev_issuer.mint(subject, name=name, ttl=8 * 3600)
    return await _open_session(request, token, name)


async def _open_session(
    request: Request, access_token: str, name: str | None
) -> Response:
    services = request.app.state.services
    try:
        claims: Claims = await services.authenticate(f"Bearer {access_token}")
    except AuthenticationError as error:
        log.warning("sign-in token refused", extra={"reason": error.reason.value})
        raise SignInFailed(
            "Your sign-in worked, but SOARS does not accept the access it was given "
            f"({error.reason.value}). Tell your SOARS administrator."
        ) from None
    if claims.is_client:
        raise SignInFailed("The portal is for people; integrations use the API.")

    next_path = safe_next(request.session.get(_NEXT_KEY))
    session_id = await store(request).create(
        issuer=claims.issuer,
        subject=claims.subject,
        display_name=name or claims.name or claims.subject,
        access_token=access_token,
        token_expires_at=claims.expires_at,
    )
    start_session(request, session_id)
    return RedirectResponse(next_path, status_code=303)


async def sign_out(request: Request) -> Response:
    await end_session(request)
    return RedirectResponse("/?signed_out=1", status_code=303)


def _display_name(userinfo: Any) -> str | None:
    for key in ("name", "preferred_username", "email"):
        value = userinfo.get(key) if hasattr(userinfo, "get") else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _short(text: str) -> str:
    # An error code from the provider, shown back: keep it short and plain.
    cleaned = "".join(char for char in text if char.isalnum() or char in "_-")
    return cleaned[:40] or "no reason given"
