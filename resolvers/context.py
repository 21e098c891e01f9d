"""The per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from audit.writer import Origin
from auth.principal import Principal
from resolvers.cursors import CursorSealer
from resolvers.errors import Unauthenticated

if TYPE_CHECKING:
    from soars.settings import Settings


@dataclass(slots=True)
class Context:
    request: Request
    response: Response | None
    pool: asyncpg.Pool
    settings: Settings
    cursors: CursorSealer
    principal: Principal | None
    origin: Origin

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated(
                "Sign in: send an access token as 'Authorization: Bearer <token>'."
            )
        return self.principal


def context_of(info: Any) -> Context:
    context: Context = info.context
    return context
