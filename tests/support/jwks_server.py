"""A real JWKS endpoint on 127.0.0.1 for the token-verification tests.

A small Starlette app served by uvicorn in a background thread, on a port the
operating system picks. Tests change what it publishes (key rotation), make it
fail (an HTTP error status or a body that is not a key set), stop it (nothing
listening: unreachable) and read how many requests it has answered.

Typical use::

    with JWKSServer({"keys": [public_jwk]}) as server:
        cache = JWKSCache(server.url, http=client)
        ...
        server.publish({"keys": [public_jwk, new_public_jwk]})
        server.fail(503)
        assert server.hits == 2
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["JWKSServer"]

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class JWKSServer:
    """Serves a JWK set at ``url`` until stopped."""

    def __init__(self, jwks: Mapping[str, object] | None = None) -> None:
        self._lock = threading.Lock()
        self._body = b""
        self._status = 200
        self._hits = 0
        self.publish(jwks or {"keys": []})

        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- what it serves

    def publish(self, jwks: Mapping[str, object]) -> None:
        """Serve ``jwks`` (a JWK set as a dict) with status 200 from now on."""
        with self._lock:
            self._body = json.dumps(jwks).encode()
            self._status = 200

    def fail(self, status: int = 503, body: bytes = b"") -> None:
        """Answer every request with ``status`` and ``body`` from now on.

        ``fail(200, b"not json")`` serves a successful response that is not
        a key set. ``publish`` ends the failure.
        """
        with self._lock:
            self._body = body
            self._status = status

    @property
    def hits(self) -> int:
        """How many requests the endpoint has answered."""
        with self._lock:
            return self._hits

    def reset_hits(self) -> None:
        with self._lock:
            self._hits = 0

    async def _endpoint(self, request: Request) -> Response:
        with self._lock:
            self._hits += 1
            body, status = self._body, self._status
        return Response(body, status_code=status, media_type="application/json")

    # -- running it

    def start(self) -> None:
        app = Starlette(routes=[Route("/jwks.json", self._endpoint)])
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)

        # Bind the socket here, on loopback only, so the port is known before
        # the server thread starts and no other process can take it meanwhile.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        host, port = self._socket.getsockname()
        self.url = f"http://{host}:{port}/jwks.json"

        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="jwks-server",
            daemon=True,
        )
        self._thread.start()
        self._wait_started()

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._server is not None and not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the JWKS test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving; afterwards connections to ``url`` are refused."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
