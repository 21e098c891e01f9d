"""Who am I, and what may I see."""

from __future__ import annotations

from typing import Any

from auth.principal import HOW_TO_GET_ACCESS
from resolvers import convert
from resolvers.context import context_of
from schema import types as t


def viewer(info: Any) -> t.Viewer:
    principal = context_of(info).require_principal()
    return t.Viewer(
        issuer=principal.issuer,
        subject=principal.subject,
        kind=t.PrincipalKind(principal.kind.value),
        name=principal.name,
        assignments=[
            t.RoleAssignment(
                organization=convert.organization(a.org_cds, a.org_name, a.org_kind),
                role=t.Role(a.role),
                ends_on=a.ends_on,
            )
            for a in principal.assignments
        ],
        how_to_get_access=None if principal.assignments else HOW_TO_GET_ACCESS,
    )
