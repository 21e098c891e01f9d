"""What every page handler needs: the signed-in session and the page's viewer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from portal.errors import SignInRequired
from portal.sessions import PortalSession, SessionStore

SESSION_KEY = "sid"


def store(request: Request) -> SessionStore:
    state = request.app.state
    found: SessionStore | None = getattr(state, "portal_sessions", None)
    if found is None:
        services = state.services
        found = SessionStore(
            services.pool,
            idle=timedelta(minutes=services.settings.portal.idle_minutes),
        )
        state.portal_sessions = found
    return found


async def current_session(request: Request) -> PortalSession | None:
    sid = request.session.get(SESSION_KEY)
    if not isinstance(sid, str):
        return None
    session = await store(request).load(sid)
    if session is None:
        request.session.pop(SESSION_KEY, None)
        return None
    request.state.signed_in = session
    return session


async def require_session(request: Request) -> PortalSession:
    session = await current_session(request)
    if session is None:
        raise SignInRequired("Please sign in to continue.")
    return session


def start_session(request: Request, session_id: str) -> None:
    # A new cookie on every sign-in (nothing of the signed-out session, its
    # CSRF token included, survives): no session fixation.
    request.session.clear()
    request.session[SESSION_KEY] = session_id


async def end_session(request: Request) -> None:
    sid = request.session.pop(SESSION_KEY, None)
    if isinstance(sid, str):
        await store(request).end(sid)
    request.session.clear()
    request.state.signed_in = None


def form(request: Request) -> FormData:
    """The POSTed form; `page()` has checked its CSRF token."""
    checked: FormData = request.state.form
    return checked


def field(request: Request, name: str, default: str = "") -> str:
    value = form(request).get(name, default)
    return value.strip() if isinstance(value, str) else default


def remember_viewer(request: Request, viewer: dict[str, Any] | None) -> None:
    # An error page drawn later in the same request keeps the navigation.
    request.state.viewer = viewer
