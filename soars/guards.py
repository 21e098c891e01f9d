"""HTTP-level defences that sit in front of every route.

- `RequestGuard` reads the request body before the application sees it and
  refuses one larger than the limit with 413 (decided from its Content-Length
  when it declares one), or one that arrives too slowly with 408. A refused
  body is never parsed, and never kept.
- `CancelOnDisconnect` wraps the GraphQL endpoint: when the client goes
  away before the response is complete, the request's work is cancelled, so
  a query waiting on PostgreSQL is cancelled on the server and its
  connection goes back to the pool reset (asyncpg does both on
  cancellation). Cancelling is safe for the audit trail: an event is written
  before the data it describes is sent, so a cancelled request can leave an
  event for data that never left, never data without an event. Downloads
  watch for the disconnect themselves, to record how far the file got.
- `cors_middleware` opens cross-origin access only to the origins named in
  SOARS_CORS_ORIGINS, without credentials, so no response ever tells a
  browser that an arbitrary site may read it with the user's cookies.
- `internal_error` is the last resort for an exception nothing else handled:
  a JSON body with a stable code and the request id, no message or trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import anyio
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CancelOnDisconnect", "RequestGuard", "cors_middleware", "internal_error"]

BODY_READ_TIMEOUT_S = 30.0


def _error_body(message: str, code: str) -> bytes:
    return json.dumps(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    ).encode()


async def _refuse(send: Send, status: int, message: str, code: str) -> None:
    body = _error_body(message, code)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body was not read: the connection cannot
                # carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# When a body is refused, the rest of it is still on its way. Closing the
# connection with those bytes unread makes the kernel reset it, and the client
# may lose the 413 before reading it; so a modest remainder is read and
# dropped (never parsed) before answering, within these bounds. A larger one
# is not worth reading: its sender gets the answer or a reset.
DRAIN_BYTES = 1 << 20
DRAIN_S = 2.0


async def _drain(receive: Receive) -> None:
    async def drop() -> None:
        dropped = 0
        while dropped < DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drop(), DRAIN_S)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestGuard:
    """Caps the request body: read whole before the application runs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float = BODY_READ_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        too_large = (
            f"The request body is larger than {self.max_body_bytes} bytes; nothing "
            "of it was processed."
        )
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            if declared <= DRAIN_BYTES:
                await _drain(receive)
            await _refuse(send, 413, too_large, "PAYLOAD_TOO_LARGE")
            return

        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
        except _TooLarge:
            await _drain(receive)
            await _refuse(send, 413, too_large, "PAYLOAD_TOO_LARGE")
            return
        except TimeoutError:
            await _refuse(
                send,
                408,
                f"The request body did not arrive within {self.body_timeout:g} s.",
                "REQUEST_TIMEOUT",
            )
            return
        except _Disconnected:
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class CancelOnDisconnect:
    """Cancels the wrapped application when its client hangs up early.

    The body is read first (behind `RequestGuard` it is already in memory),
    so the watch covers everything the application does, authentication
    and the loading of the caller's roles included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        state = {"replayed": False, "complete": False}
        disconnected = anyio.Event()

        async def app_receive() -> Message:
            if not state["replayed"]:
                state["replayed"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Only the watcher below reads from the server from now on.
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def app_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get(
                "more_body", False
            ):
                state["complete"] = True
            await send(message)

        async with anyio.create_task_group() as group:

            async def watch() -> None:
                # With the body read, the server's next message is the
                # disconnect: when the client leaves, or (uvicorn) once the
                # response is complete.
                while (await receive())["type"] != "http.disconnect":
                    pass
                disconnected.set()
                if not state["complete"]:
                    group.cancel_scope.cancel()

            group.start_soon(watch)
            await self.app(scope, app_receive, app_send)
            group.cancel_scope.cancel()


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def cors_middleware(origins: Sequence[str]) -> list[Middleware]:
    """CORS for exactly ``origins``; none at all when there are none.

    Without the middleware no response carries Access-Control-Allow-Origin,
    so browsers keep other sites' scripts from reading any answer. Bearer
    tokens travel in the Authorization header, not in cookies, so
    credentials are never allowed, whatever the origin.
    """
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"],
            allow_credentials=False,
            max_age=600,
        )
    ]


async def internal_error(request: Request, error: Exception) -> Response:
    state = request.scope.get("state", {})
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": "Something went wrong on our side; the request was "
                    "not completed.",
                    "extensions": {
                        "code": "INTERNAL_SERVER_ERROR",
                        "requestId": state.get("request_id"),
                    },
                }
            ],
        },
        status_code=500,
    )
