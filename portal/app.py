"""The portal's routes, mounted under `/` after every API route.

Every page goes through `page()`: it gives the page a request id (sent with
each GraphQL call, so one page view's audit events share it), checks the CSRF
token of every POST before the handler runs, and turns a PortalError into a
plain-language page with the right status.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from portal import admin, compliance, pages, signin
from portal.errors import PageNotFound, PortalError, SignInRequired
from portal.render import render
from portal.security import SecurityHeaders, checked_form
from portal.web import end_session
from soars.settings import Settings

Handler = Callable[[Request], Awaitable[Response]]

# Forms are a few fields; nothing larger is read.
_MAX_FORM_BYTES = 64 * 1024


def page(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        request.state.request_id = uuid.uuid4().hex
        request.state.signed_in = None
        try:
            if request.method == "POST":
                request.state.form = await checked_form(request)
            return await handler(request)
        except SignInRequired as error:
            return await _sign_in_again(request, error)
        except PortalError as error:
            return render(
                request,
                "error.html",
                status=error.status,
                title=error.title,
                error=error,
                viewer=getattr(request.state, "viewer", None),
            )

    endpoint.__name__ = handler.__name__
    return endpoint


async def _sign_in_again(request: Request, error: SignInRequired) -> Response:
    await end_session(request)
    if request.method == "GET" and request.url.path != "/":
        target = request.url.path + (
            f"?{request.url.query}" if request.url.query else ""
        )
        return RedirectResponse(f"/?next={quote(target, safe='')}", status_code=303)
    return render(request, "error.html", status=401, title=error.title, error=error)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)

    async def missing(request: Request) -> Response:
        raise PageNotFound(
            "There is no page at this address. Start again from the overview."
        )

    response = await page(missing)(request)
    await response(scope, receive, send)


def _cookie_key(settings: Settings, secret: str) -> str:
    # Its own key, derived from the service secret: a cookie signature is no
    # use as anything else the secret protects.
    return hmac.new(secret.encode(), b"soars-portal-cookie", hashlib.sha256).hexdigest()


def portal_mount(settings: Settings, secret: str) -> Mount:
    """The portal as one Mount at `/`: list it after every other route."""
    routes: list[Any] = [
        Route("/", page(pages.overview), methods=["GET"]),
        Route("/signin", page(signin.start), methods=["GET"]),
        Route("/signin/callback", page(signin.callback), methods=["GET"]),
        Route("/signout", page(signin.sign_out), methods=["POST"]),
        Route("/releases", page(pages.releases), methods=["GET"]),
        Route("/reports", page(pages.reports), methods=["GET"]),
        Route("/reports/{id}", page(pages.report), methods=["GET"]),
        Route("/reports/{id}/students", page(pages.students), methods=["GET"]),
        Route("/reports/{id}/download", page(pages.download), methods=["POST"]),
        Route("/purpose", page(pages.purpose), methods=["GET", "POST"]),
        Route("/audit", page(compliance.trail), methods=["GET", "POST"]),
        Route("/audit/student", page(compliance.student), methods=["GET", "POST"]),
        Route("/audit/integrity", page(compliance.integrity), methods=["GET"]),
        Route("/admin/releases", page(admin.releases), methods=["GET", "POST"]),
        Route("/admin/releases/{id}", page(admin.release), methods=["GET", "POST"]),
        Route("/admin/roles", page(admin.roles), methods=["GET", "POST"]),
        Mount("/static", StaticFiles(packages=[("portal", "static")]), name="static"),
    ]
    if settings.is_development:
        routes.append(
            Route("/signin/dev", page(signin.development), methods=["GET", "POST"])
        )

    production = not settings.is_development
    return Mount(
        "",
        app=Router(routes, default=not_found),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=_cookie_key(settings, secret),
                # __Host-: only ever sent back to this host, over https, for /.
                session_cookie="__Host-soars" if production else "soars_session",
                max_age=None,  # a browser session; the server side sets the limit
                same_site="lax",
                https_only=production,
            ),
        ],
        max_body_size=_MAX_FORM_BYTES,
        name="portal",
    )
