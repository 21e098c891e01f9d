"""Browser-facing protections: response headers and CSRF tokens.

Content-Security-Policy allows scripts, styles, images and form targets from
this origin only, and no inline script or style at all: a value that slipped
past the templates' escaping still cannot run. The portal is never framed
(clickjacking), sends no Referer to other sites (a report id or a cursor in
a URL stays here) and is never cached (its pages carry student records).

CSRF: every state-changing request is a POST whose form carries a token that
lives in the person's signed session cookie; the two must match. The cookie
is SameSite=Lax as a second line, not the only one.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, MutableHeaders, UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.errors import BadForm

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}

_CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
_MAX_FIELDS = 50


class SecurityHeaders:
    """Adds the headers above to every portal response; pages are not cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use."""
    token = request.session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[_CSRF_KEY] = token
    return token


async def read_form(request: Request) -> FormData:
    """A URL-encoded form body (the portal's only kind: it takes no uploads)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm(
            "SOARS did not understand what was sent; use the form on the page."
        )
    body = await request.body()  # the mount caps its size
    try:
        pairs: list[tuple[str, str | UploadFile]] = []
        pairs += parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise BadForm(
            "SOARS did not understand what was sent; use the form on the page."
        ) from None
    return FormData(pairs)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token has been checked."""
    form = await read_form(request)
    sent = form.get(CSRF_FIELD)
    expected = request.session.get(_CSRF_KEY)
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise BadForm(
            "This form had expired or did not come from a SOARS page. Go back, "
            "reload the page and try again."
        )
    return form
