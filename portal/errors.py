"""What can go wrong on a portal page, each with the words a person sees."""

from __future__ import annotations

from collections.abc import Mapping


class PortalError(Exception):
    """A page that cannot be shown; the message is plain language, safe to show."""

    status = 500
    title = "Something went wrong"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignInRequired(PortalError):
    status = 401
    title = "Please sign in"

    def __init__(
        self, message: str = "Your session has ended. Please sign in again."
    ) -> None:
        super().__init__(message)


class BadForm(PortalError):
    status = 400
    title = "That form could not be used"


class PageNotFound(PortalError):
    status = 404
    title = "Page not found"


class SignInFailed(PortalError):
    status = 400
    title = "Sign-in did not work"


# How each GraphQL error code is shown: its HTTP status and page title.
_API_CODES: Mapping[str, tuple[int, str]] = {
    "NOT_FOUND": (404, "Not available"),
    "FORBIDDEN": (403, "Not allowed"),
    "EXPIRED": (410, "This release has expired"),
    "WITHDRAWN": (410, "This release was withdrawn"),
    "BAD_USER_INPUT": (400, "Please check what you entered"),
    "AUDIT_UNAVAILABLE": (503, "Please try again shortly"),
}


class ApiFailure(PortalError):
    """The API refused or failed; `code` is its stable `extensions.code`."""

    def __init__(
        self, code: str, message: str, extensions: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.extensions = dict(extensions or {})
        self.status, self.title = _API_CODES.get(code, (502, "Something went wrong"))
        if self.status == 502:
            # Unexpected codes (validation of the portal's own query, an
            # internal error) are the service's fault, not the person's.
            self.message = (
                "SOARS could not complete this page. Please try again; if it "
                "keeps happening, tell your SOARS administrator."
            )
