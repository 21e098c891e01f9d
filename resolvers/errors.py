"""Errors a GraphQL client sees, each with a stable `extensions.code`."""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    EXPIRED = "EXPIRED"
    WITHDRAWN = "WITHDRAWN"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    TOKEN_REDEEMED = "TOKEN_REDEEMED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    FIELD_NOT_IN_LAYOUT = "FIELD_NOT_IN_LAYOUT"
    WRONG_REPORT_TYPE = "WRONG_REPORT_TYPE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class ApiError(Exception):
    """An error whose message is written for the client and safe to show."""

    code: Code = Code.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **extensions: object) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class Unauthenticated(ApiError):
    code = Code.UNAUTHENTICATED


class Forbidden(ApiError):
    code = Code.FORBIDDEN


class NotFound(ApiError):
    code = Code.NOT_FOUND

    def __init__(self, what: str = "report") -> None:
        # The same words whether the thing does not exist or is outside the
        # caller's scope: the difference must not be observable.
        super().__init__(f"No {what} with that id is available to you.")


class BadUserInput(ApiError):
    code = Code.BAD_USER_INPUT


class Expired(ApiError):
    code = Code.EXPIRED


class Withdrawn(ApiError):
    code = Code.WITHDRAWN


class FieldNotInLayout(ApiError):
    """A query asked for a field the release's layout does not have."""

    code = Code.FIELD_NOT_IN_LAYOUT


class WrongReportType(ApiError):
    code = Code.WRONG_REPORT_TYPE


class AuditUnavailable(ApiError):
    code = Code.AUDIT_UNAVAILABLE

    def __init__(self) -> None:
        super().__init__(
            "The access could not be recorded in the audit trail, so no student "
            "data was sent. Try again shortly."
        )
