"""GraphQL types for what a release's layout holds: its fields, the overall
CCI level derived from them, and the LTEL designation."""

from __future__ import annotations

from enum import Enum
from functools import cache

import strawberry

from db import cci_levels
from db.layouts import LAYOUTS, Field, Kind


def graphql_name(column: str) -> str:
    """The GraphQL field of a layout column: sbac_ela_level -> sbacElaLevel."""
    head, *rest = column.split("_")
    return head + "".join(word.capitalize() for word in rest)


@strawberry.type(description="One field of a release's record layout.")
class LayoutField:
    name: str = strawberry.field(description="The column name in the file.")
    graphql_name: str = strawberry.field(
        description="The field of the student type that carries it."
    )
    format: str
    description: str
    optional: bool = strawberry.field(description="Whether it may be empty.")


@cache
def layout_fields(layout_name: str) -> list[LayoutField]:
    return [_layout_field(field) for field in LAYOUTS[layout_name].fields]


def _layout_field(field: Field) -> LayoutField:
    return LayoutField(
        name=field.name,
        graphql_name=graphql_name(field.name),
        format=field.kind.value,
        description=field.description,
        optional=field.optional or field.kind is Kind.LEVEL,
    )


@strawberry.enum(description="The overall College/Career Indicator levels.")
class CciLevel(Enum):
    PREPARED = "prepared"
    APPROACHING_PREPARED = "approaching_prepared"
    NOT_PREPARED = "not_prepared"


_LEVELS = {
    cci_levels.Level.PREPARED: CciLevel.PREPARED,
    cci_levels.Level.APPROACHING_PREPARED: CciLevel.APPROACHING_PREPARED,
    cci_levels.Level.NOT_PREPARED: CciLevel.NOT_PREPARED,
}


@strawberry.type(description="One rule of the CCI levels (docs/cci-levels.md).")
class CciRule:
    id: str = strawberry.field(description="P1-P12 (Prepared) or A1-A6.")
    level: CciLevel
    description: str
    confirmed: bool = strawberry.field(
        description="False for rules taken from district and county-office "
        "explanations rather than from a state page."
    )


_RULES = {
    rule.id: CciRule(
        id=rule.id,
        level=_LEVELS[rule.level],
        description=rule.description,
        confirmed=rule.confirmed,
    )
    for rule in cci_levels.RULES
}


@strawberry.type(
    description="A student's overall CCI level, derived from the measures."
)
class CciLevelResult:
    level: CciLevel | None = strawberry.field(
        description="The level; null when the release's layout lacks what a rule "
        "that could have decided it needs (see notApplied)."
    )
    derivable: bool
    at_least: CciLevel = strawberry.field(
        description="The level the rules that could be applied establish."
    )
    measures_met: list[CciRule] = strawberry.field(
        description="The rules met at the level reached (atLeast)."
    )
    not_applied: list[CciRule] = strawberry.field(
        description="Rules of the year that this release's layout cannot apply and "
        "that could have placed the student higher."
    )
    reason: str


def cci_level(placement: cci_levels.Placement) -> CciLevelResult:
    return CciLevelResult(
        level=_LEVELS[placement.level] if placement.level is not None else None,
        derivable=placement.derivable,
        at_least=_LEVELS[placement.at_least],
        measures_met=[_RULES[rule.id] for rule in placement.met],
        not_applied=[_RULES[rule.id] for rule in placement.not_applied],
        reason=placement.reason,
    )


@strawberry.enum(description="Education Code 313.1 designations.")
class LtelDesignation(Enum):
    LTEL = "LTEL"
    AT_RISK = "AT_RISK"
