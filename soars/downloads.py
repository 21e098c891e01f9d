"""GET /downloads/{token} (or GET /downloads with the token as a bearer
credential): one report's CSV file, streamed from PostgreSQL's COPY.

The route redeems the token in one SQL statement (unused, unrevoked,
unexpired, release still available, principal still assigned), commits the
"download started" audit event, and only then starts `COPY (...) TO STDOUT`.
COPY's bytes pass through untouched: asyncpg hands them to a bounded queue,
the response sends them on. When the client reads slowly the queue fills,
asyncpg stops reading its socket and PostgreSQL waits, so the service holds
a few chunks of a file, never the file. Afterwards a "completed" event
records the rows and bytes sent, or an "aborted" event records how far a
download got before the client went away or the database failed.

Tokens are single use: a download that breaks off needs a new token. A token
copied from a log or a browser history is worth nothing once it was used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from audit.tags import Action, ActorKind, Outcome, Purpose
from audit.writer import Actor, AuditWriteError, Origin, record
from db import downloads
from db.downloads import Redeemed, Refused

if TYPE_CHECKING:
    from soars.app import Services

log = logging.getLogger("soars.downloads")

#: How many COPY chunks (each what asyncpg read from its socket at once, at
#: most a few hundred KiB) may wait between PostgreSQL and the client.
QUEUE_CHUNKS = 8
#: How long a request waits for a free download slot before a 503.
SLOT_WAIT_S = 5.0
#: How long the COPY waits for a pooled connection.
ACQUIRE_TIMEOUT_S = 10.0
UTF8_BOM = b"\xef\xbb\xbf"
#: How long a client may take nothing of the file before it is cut off.
STALL_S = 60.0
#: Pauses between attempts to record a download's ending (seconds).
END_RECORD_RETRIES_S = (0.2, 0.5, 1.0, 2.0, 4.0)

# Each refusal: HTTP status and a sentence for the client. The reason codes
# come from db/downloads.py.
REFUSALS: dict[str, tuple[int, str]] = {
    "TOKEN_MISSING": (
        401,
        (
            "No download token was sent: use /downloads/<token>, or send "
            "'Authorization: Bearer <token>' to /downloads."
        ),
    ),
    "TOKEN_UNKNOWN": (
        404,
        (
            "This download token is not one SOARS issued. Ask for a new one with "
            "the createDownloadToken mutation."
        ),
    ),
    "TOKEN_REDEEMED": (
        410,
        (
            "This download token was already used; each token downloads the file "
            "once. Ask for a new one with the createDownloadToken mutation."
        ),
    ),
    "TOKEN_REVOKED": (
        410,
        (
            "This download token was revoked. Ask for a new one with the "
            "createDownloadToken mutation."
        ),
    ),
    "TOKEN_EXPIRED": (
        410,
        (
            "This download token has expired; tokens last a few minutes. Ask for a "
            "new one with the createDownloadToken mutation."
        ),
    ),
    "WITHDRAWN": (
        410,
        "The state withdrew this release; its file can no longer be downloaded.",
    ),
    "EXPIRED": (
        410,
        (
            "This release's availability has ended; its file can no longer be "
            "downloaded."
        ),
    ),
    "TOO_MANY_ATTEMPTS": (
        429,
        (
            "Too many download links that open nothing came from this address; "
            "the token was not used. Try again in a minute."
        ),
    ),
    "FORBIDDEN": (
        403,
        (
            "The principal that asked for this token no longer holds a role that "
            "covers this report."
        ),
    ),
}


class DownloadInterrupted(Exception):
    """The file broke off after its first bytes were sent.

    Raised out of the ASGI app so that the server drops the connection
    instead of ending the response cleanly: the client must see an
    incomplete transfer, not a short file that looks whole.
    """


@dataclass(frozen=True, slots=True)
class _Failed:
    error_type: str


_END = object()
_DISCONNECTED = object()


#: Refusals that name no issued token: someone guessing, or a broken client.
GUESSES = frozenset({"TOKEN_MISSING", "TOKEN_UNKNOWN"})


class _Guesses:
    """Counts, per client address, the links that opened nothing.

    Each such refusal is an audit event on the state's chain, so without a
    limit one client could fill the trail and hold up the state's writers.
    Past the limit the address gets 429 without a database lookup (a valid
    token it sends is not spent), and one event per minute says so.
    """

    def __init__(self, per_minute: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._guesses = RateLimitItemPerMinute(per_minute)
        self._notes = RateLimitItemPerMinute(1)
        # Links of each address being looked up now: each may turn out to be
        # a guess, so a burst sent at once cannot pass the limit together.
        self._pending: dict[str, int] = {}

    def blocked(self, address: str) -> bool:
        cost = self._pending.get(address, 0) + 1
        return not self._limiter.test(self._guesses, "guess", address, cost=cost)

    @contextlib.contextmanager
    def looking_up(self, address: str) -> Iterator[None]:
        self._pending[address] = self._pending.get(address, 0) + 1
        try:
            yield
        finally:
            left = self._pending[address] - 1
            if left:
                self._pending[address] = left
            else:
                del self._pending[address]

    def count(self, address: str) -> None:
        self._limiter.hit(self._guesses, "guess", address)

    def note_block(self, address: str) -> bool:
        """True once a minute per address: when to record the blocking."""
        return self._limiter.hit(self._notes, "note", address)


class DownloadRoute:
    """The ASGI endpoint; `services` returns the running service's Services."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services
        self._slots: asyncio.Semaphore | None = None
        self._guesses: _Guesses | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._services()
        if services is None:
            await _error(503, "STARTING", "The service is starting.")(
                scope, receive, send
            )
            return
        if scope["method"] != "GET":
            # A HEAD (a link preview, a proxy checking the URL) would spend
            # the single-use token without delivering the file.
            response = _error(405, "METHOD_NOT_ALLOWED", "Download with GET.")
            response.headers["allow"] = "GET"
            await response(scope, receive, send)
            return
        request = Request(scope)
        origin = _origin(request)
        token = request.path_params.get("token") or _bearer(
            request.headers.get("authorization")
        )
        # Checked here, before a download slot is taken, and again just
        # before the lookup, where the check and the reservation are one step.
        if await self._too_many_guesses(services, origin, scope, receive, send):
            return

        # A download holds a pooled connection for as long as the client
        # takes to read the file. Capping concurrent downloads at half the
        # pool keeps connections free for GraphQL whatever the clients do.
        slots = self._slots_for(services)
        try:
            await asyncio.wait_for(slots.acquire(), SLOT_WAIT_S)
        except TimeoutError:
            response = _error(
                503,
                "DOWNLOADS_BUSY",
                "Too many downloads are running; the token was not used. Try "
                "again in a few seconds.",
            )
            response.headers["retry-after"] = "5"
            await response(scope, receive, send)
            return
        try:
            await self._download(services, token, origin, request, receive, send)
        finally:
            slots.release()

    async def _too_many_guesses(
        self,
        services: Services,
        origin: Origin,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> bool:
        """Answers 429 (recorded once a minute) if the address is over its
        limit of links that open nothing; True when it did."""
        guesses = self._guesses_for(services)
        address = origin.client_addr or "unknown"
        if not guesses.blocked(address):
            return False
        refused = Refused("TOO_MANY_ATTEMPTS")
        if guesses.note_block(address):
            await _refuse(services, refused, origin, scope, receive, send)
        else:
            await _answer(refused, scope, receive, send)
        return True

    def _guesses_for(self, services: Services) -> _Guesses:
        if self._guesses is None:
            self._guesses = _Guesses(services.settings.download_guesses_per_minute)
        return self._guesses

    def _slots_for(self, services: Services) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, services.settings.pool_max // 2))
        return self._slots

    async def _download(
        self,
        services: Services,
        token: str | None,
        origin: Origin,
        request: Request,
        receive: Receive,
        send: Send,
    ) -> None:
        scope = request.scope
        if not token:
            self._guesses_for(services).count(origin.client_addr or "unknown")
            await _refuse(
                services, Refused("TOKEN_MISSING"), origin, scope, receive, send
            )
            return
        if await self._too_many_guesses(services, origin, scope, receive, send):
            return
        try:
            address = origin.client_addr or "unknown"
            with self._guesses_for(services).looking_up(address):
                outcome = await downloads.redeem(services.pool, token)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.exceptions.InternalClientError,  # a dead pooled connection
            OSError,
        ) as exc:
            log.error(
                "download token check failed", extra={"error": type(exc).__name__}
            )
            await _error(
                503,
                "SERVICE_UNAVAILABLE",
                "The database could not be reached; the token was not used.",
            )(scope, receive, send)
            return
        if isinstance(outcome, Refused):
            if outcome.reason in GUESSES:
                self._guesses_for(services).count(origin.client_addr or "unknown")
            await _refuse(services, outcome, origin, scope, receive, send)
            return

        redeemed = outcome
        actor = Actor(
            issuer=redeemed.issuer,
            subject=redeemed.subject,
            kind=ActorKind(redeemed.actor_kind),
            role=redeemed.role,
        )
        bom = request.query_params.get("bom", "").lower() in ("1", "true", "yes")
        try:
            started_event = await record(
                services.pool,
                action=Action.REPORT_DOWNLOAD_STARTED,
                outcome=Outcome.GRANTED,
                actor=actor,
                origin=origin,
                org_cds=redeemed.org_cds,
                purpose=Purpose(redeemed.purpose),
                purpose_detail=redeemed.purpose_detail,
                release_id=redeemed.release_id,
                report_id=redeemed.report_id,
                student_count=redeemed.student_count,
                detail={"token_id": redeemed.token_id, "bom": bom},
            )
        except AuditWriteError:
            # Fail closed: nothing leaves without its record. The token stays
            # spent (redeeming is one-way); the client asks for a new one.
            await _error(
                503,
                "AUDIT_UNAVAILABLE",
                "The download could not be recorded in the audit trail, so no "
                "student data was sent. Ask for a new token and try again shortly.",
            )(scope, receive, send)
            return

        stream = _CopyStream(services, redeemed, bom)
        try:
            result = await stream.run(scope, receive, send)
        except asyncio.CancelledError:
            # The server is stopping: the download ends here, on record.
            result = stream.result("service_stopped")
            await _record_end(services, redeemed, actor, origin, started_event, result)
            raise
        await _record_end(services, redeemed, actor, origin, started_event, result)
        if result.reason in ("database_error", "client_stalled") and (
            result.response_started
        ):
            raise DownloadInterrupted(
                f"download of report {redeemed.report_id} broke off"
            )


@dataclass(frozen=True, slots=True)
class _Result:
    completed: bool
    reason: str | None  # why it did not complete
    rows: int
    bytes: int
    seconds: float
    response_started: bool


class _CopyStream:
    """One download: COPY into a bounded queue, the queue into the response."""

    def __init__(self, services: Services, redeemed: Redeemed, bom: bool) -> None:
        self.services = services
        self.redeemed = redeemed
        self.bom = bom
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self.disconnected = asyncio.Event()
        self.began = time.perf_counter()
        self.sent = 0
        self.newlines = 0
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> _Result:
        producer = asyncio.create_task(self._copy())
        watcher = asyncio.create_task(self._watch(receive))
        try:
            try:
                reason = await self._pump(send)
            except OSError:
                # Servers on ASGI 2.4 and later raise here when the client
                # has gone; uvicorn's h11 server returns quietly instead.
                reason = "client_disconnected"
            if reason == "database_error" and not self.started:
                await _error(
                    503,
                    "DOWNLOAD_FAILED",
                    "The file could not be read from the database; no student "
                    "data was sent. Ask for a new token and try again.",
                )(scope, receive, send)
        finally:
            # Cancelling the producer cancels the COPY on the server (asyncpg
            # sends a cancel request) and returns its connection to the pool,
            # reset and outside any transaction. Waiting for that here means
            # the "aborted" event is only written once the connection is
            # clean.
            watcher.cancel()
            producer.cancel()
            await asyncio.gather(watcher, producer, return_exceptions=True)
        return self.result(reason)

    async def _pump(self, send: Send) -> str | None:
        """Send chunks until COPY ends; why the file is incomplete, or None."""
        while True:
            item = await self.queue.get()
            if item is _END:
                break
            if item is _DISCONNECTED:
                return "client_disconnected"
            if isinstance(item, _Failed):
                return "database_error"
            assert isinstance(item, bytes)
            if not self.started:
                await send(self._start_message())
                self.started = True
                if self.bom:
                    await send(_body(UTF8_BOM))
                    self.sent += len(UTF8_BOM)
            try:
                # In this task (asyncio.timeout), not another (wait_for):
                # the server's send must run where the request runs.
                async with asyncio.timeout(STALL_S):
                    await send(_body(item))
            except TimeoutError:
                # A client that stops reading holds a download slot and a
                # pooled connection; one that has taken nothing for this long
                # is cut off, so that a few cannot keep everyone waiting.
                return "client_stalled"
            self.sent += len(item)
            self.newlines += item.count(b"\n")
            if self.disconnected.is_set():
                return "client_disconnected"

        if not self.started:  # pragma: no cover - COPY always sends a header
            await send(self._start_message())
            self.started = True
        await send({"type": "http.response.body", "body": b""})
        # uvicorn's send returns quietly once the client is gone; the flag
        # tells whether the last bytes had anywhere to go.
        return "client_disconnected" if self.disconnected.is_set() else None

    def result(self, reason: str | None) -> _Result:
        header_lines = 1 if self.newlines else 0
        return _Result(
            completed=reason is None,
            reason=reason,
            rows=max(0, self.newlines - header_lines),
            bytes=self.sent,
            seconds=time.perf_counter() - self.began,
            response_started=self.started,
        )

    async def _copy(self) -> None:
        outcome: object = _END
        try:
            async with self.services.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                # The timeout bounds the whole COPY, including the time spent
                # waiting for a slow client; without it the pool's short
                # command timeout would cut off large files on slow links.
                await conn.copy_from_query(
                    downloads.copy_sql(self.redeemed.layout),
                    self.redeemed.report_id,
                    output=self._put,
                    format="csv",
                    header=True,
                    timeout=self.services.settings.download_timeout,
                )
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            # A pooled connection the server has just ended can fail this way
            # (MagicStack/asyncpg#1069); uncaught, it left the sender waiting
            # for a chunk that never came.
            asyncpg.exceptions.InternalClientError,
            OSError,
            TimeoutError,
        ) as exc:
            log.error(
                "download COPY failed",
                extra={
                    "error": type(exc).__name__,
                    "report_id": self.redeemed.report_id,
                },
            )
            outcome = _Failed(type(exc).__name__)
        await self.queue.put(outcome)

    async def _put(self, chunk: bytes | bytearray) -> None:
        # asyncpg hands over a fresh bytearray per batch of rows; ASGI wants
        # bytes. The copy is a memcpy, far below the cost of the send.
        await self.queue.put(bytes(chunk))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                # Wakes the sender if it waits for a chunk; if the queue is
                # full the sender is inside send() and checks the flag after.
                try:
                    self.queue.put_nowait(_DISCONNECTED)
                except asyncio.QueueFull:
                    pass
                return

    def _start_message(self) -> Message:
        redeemed = self.redeemed
        filename = (
            f"soars-{redeemed.report_type}-{redeemed.year}-{redeemed.org_cds}-"
            f"{_slug(redeemed.org_name)}.csv"
        )
        return {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/csv; charset=utf-8; header=present"),
                (
                    b"content-disposition",
                    f'attachment; filename="{filename}"'.encode("ascii"),
                ),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
                (b"x-soars-row-count", str(redeemed.student_count).encode("ascii")),
            ],
        }


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


async def _record_end(
    services: Services,
    redeemed: Redeemed,
    actor: Actor,
    origin: Origin,
    started_event: int,
    result: _Result,
) -> None:
    detail: dict[str, object] = {
        "token_id": redeemed.token_id,
        "started_event": started_event,
        "rows": result.rows,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 3),
    }
    if result.reason:
        detail["reason"] = result.reason
    # The client already has what was sent, so the ending can wait for a
    # database that is restarting or failing over (seconds), rather than be
    # missing from the trail. A write whose acknowledgement was lost could be
    # stored twice; a duplicate ending is the lesser harm.
    for delay in END_RECORD_RETRIES_S:
        try:
            await _write_end(services, redeemed, actor, origin, result, detail)
            return
        except AuditWriteError:
            await asyncio.sleep(delay)
    try:
        await _write_end(services, redeemed, actor, origin, result, detail)
    except AuditWriteError:
        # The data already left under the "started" event, which names the
        # report and its size; only the ending is missing from the trail.
        log.error(
            "download end not recorded",
            extra={"started_event": started_event, "completed": result.completed},
        )


async def _write_end(
    services: Services,
    redeemed: Redeemed,
    actor: Actor,
    origin: Origin,
    result: _Result,
    detail: dict[str, object],
) -> None:
    await record(
        services.pool,
        action=(
            Action.REPORT_DOWNLOAD_COMPLETED
            if result.completed
            else Action.REPORT_DOWNLOAD_ABORTED
        ),
        outcome=Outcome.GRANTED if result.completed else Outcome.FAILED,
        actor=actor,
        origin=origin,
        org_cds=redeemed.org_cds,
        purpose=Purpose(redeemed.purpose),
        purpose_detail=redeemed.purpose_detail,
        release_id=redeemed.release_id,
        report_id=redeemed.report_id,
        student_count=result.rows,
        detail=detail,
    )


async def _refuse(
    services: Services,
    refused: Refused,
    origin: Origin,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Answer a token that opens nothing with a 4xx, and record the attempt."""
    actor = Actor(issuer=None, subject=None, kind=ActorKind.ANONYMOUS)
    if refused.issuer is not None and refused.actor_kind is not None:
        actor = Actor(
            issuer=refused.issuer,
            subject=refused.subject,
            kind=ActorKind(refused.actor_kind),
            role=refused.role,
        )
    detail: dict[str, object] = {"reason": refused.reason}
    if refused.token_id is not None:
        detail["token_id"] = refused.token_id
    try:
        await record(
            services.pool,
            action=Action.REPORT_DOWNLOAD_REFUSED,
            outcome=Outcome.DENIED,
            actor=actor,
            origin=origin,
            org_cds=refused.org_cds,
            purpose=Purpose(refused.purpose) if refused.purpose else None,
            release_id=refused.release_id,
            report_id=refused.report_id,
            detail=detail,
        )
    except AuditWriteError:
        # A refusal discloses nothing, so it is sent all the same.
        log.error("download refusal not recorded", extra=detail)
    await _answer(refused, scope, receive, send)


async def _answer(refused: Refused, scope: Scope, receive: Receive, send: Send) -> None:
    status, message = REFUSALS[refused.reason]
    response = _error(status, refused.reason, message)
    if status == 401:
        response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
    if status == 429:
        response.headers["retry-after"] = "60"
    await response(scope, receive, send)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"cache-control": "no-store"},
    )


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _origin(request: Request) -> Origin:
    # Imported here: soars.app imports this module to mount the route.
    from soars.app import origin_of

    return origin_of(request)


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.decode().lower()).strip("-")[:60]
