"""The overall College/Career Indicator level of one student, from the measures.

A student of the four-year graduation cohort is placed at the highest level
whose rule they meet: Prepared, then Approaching Prepared, else Not
Prepared. Only graduates can be Prepared or Approaching Prepared. The rules
are the table in `docs/cci-levels.md`; each has an id (P1..P12, A1..A6) that
the API and the tests use.

Two kinds of rule need a field that not every layout has:

* rules introduced with a measure (pre-apprenticeship, from the cci-2023
  layout) are simply not rules of an earlier year: a cci-2017 student is
  placed without them, and the level is exact;
* rules of every year whose data a release lacks (Smarter Balanced results,
  absent from the cci-2021 layout of the 2021 and 2022 releases) cannot be
  applied. If one of them could have placed the student higher than the
  rules that could be applied (given the student's other measures, with the
  most favourable value for what is missing), the level cannot be derived:
  `level` is None, `at_least` says what the applicable rules establish, and
  `not_applied` names the rules that could have changed it.

Pure functions of their inputs; no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from db.layouts import Layout

__all__ = ["RULES", "Level", "Measures", "Placement", "Rule", "place"]


class Level(IntEnum):
    NOT_PREPARED = 0
    APPROACHING_PREPARED = 1
    PREPARED = 2

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title()


@dataclass(frozen=True, slots=True)
class Measures:
    """One student's measures as a release gives them; None where it has none."""

    graduated: bool
    ag_complete: bool
    cte_pathway: bool
    ap_exams_passed: int
    ib_exams_passed: int
    college_credit_semesters: int
    sbac_ela_level: int | None
    sbac_math_level: int | None
    seal_of_biliteracy: bool
    military_science_years: int
    pre_apprenticeship: str | None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    level: Level
    description: str
    needs: frozenset[str]  # layout columns the rule reads
    test: Callable[[Measures], bool]
    # A rule introduced with a measure exists only for layouts carrying it.
    introduced_with: str | None = None
    # From district and county-office explanations, not from a CDE page.
    confirmed: bool = True

    def applies_to(self, layout: Layout) -> bool:
        return all(layout.has(column) for column in self.needs)

    def in_force_for(self, layout: Layout) -> bool:
        return self.introduced_with is None or layout.has(self.introduced_with)


def _sbac_3_and_2(m: Measures) -> bool:
    """Level 3 or higher in one subject and 2 or higher in the other."""
    ela, maths = m.sbac_ela_level, m.sbac_math_level
    if ela is None or maths is None:
        return False
    return max(ela, maths) >= 3 and min(ela, maths) >= 2


def _sbac_both(m: Measures, level: int) -> bool:
    ela, maths = m.sbac_ela_level, m.sbac_math_level
    return ela is not None and maths is not None and min(ela, maths) >= level


_SBAC = frozenset({"sbac_ela_level", "sbac_math_level"})
_CTE = frozenset({"cte_pathway"})
_CREDIT = frozenset({"college_credit_semesters"})
_AG = frozenset({"ag_complete"})
_EXAMS = frozenset({"ap_exams_passed", "ib_exams_passed"})
_MILITARY = frozenset({"military_science_years"})
_PRE = frozenset({"pre_apprenticeship"})
_P, _A = Level.PREPARED, Level.APPROACHING_PREPARED

RULES: tuple[Rule, ...] = (
    Rule(
        "P1",
        _P,
        "CTE pathway completion plus Smarter Balanced level 3 or higher in one "
        "subject and 2 or higher in the other",
        _CTE | _SBAC,
        lambda m: m.cte_pathway and _sbac_3_and_2(m),
    ),
    Rule(
        "P2",
        _P,
        "CTE pathway completion plus one semester of college credit",
        _CTE | _CREDIT,
        lambda m: m.cte_pathway and m.college_credit_semesters >= 1,
    ),
    Rule(
        "P3",
        _P,
        "Smarter Balanced level 3 or higher in both ELA and mathematics",
        _SBAC,
        lambda m: _sbac_both(m, 3),
    ),
    Rule(
        "P4",
        _P,
        "Two semesters of college credit, C- or better",
        _CREDIT,
        lambda m: m.college_credit_semesters >= 2,
    ),
    Rule(
        "P5",
        _P,
        "AP score of 3 or higher on two exams, or IB score of 4 or higher on two exams",
        _EXAMS,
        lambda m: m.ap_exams_passed >= 2 or m.ib_exams_passed >= 2,
    ),
    Rule(
        "P6",
        _P,
        "a-g completion plus CTE pathway completion",
        _AG | _CTE,
        lambda m: m.ag_complete and m.cte_pathway,
    ),
    Rule(
        "P7",
        _P,
        "a-g completion plus Smarter Balanced level 3 or higher in one subject and "
        "2 or higher in the other",
        _AG | _SBAC,
        lambda m: m.ag_complete and _sbac_3_and_2(m),
    ),
    Rule(
        "P8",
        _P,
        "a-g completion plus one semester of college credit",
        _AG | _CREDIT,
        lambda m: m.ag_complete and m.college_credit_semesters >= 1,
    ),
    Rule(
        "P9",
        _P,
        "a-g completion plus one AP exam scored 3 or higher or one IB exam scored "
        "4 or higher",
        _AG | _EXAMS,
        lambda m: m.ag_complete and (m.ap_exams_passed >= 1 or m.ib_exams_passed >= 1),
    ),
    Rule(
        "P10",
        _P,
        "State Seal of Biliteracy plus Smarter Balanced ELA level 3 or higher",
        frozenset({"seal_of_biliteracy", "sbac_ela_level"}),
        lambda m: (
            m.seal_of_biliteracy
            and m.sbac_ela_level is not None
            and m.sbac_ela_level >= 3
        ),
        confirmed=False,
    ),
    Rule(
        "P11",
        _P,
        "Two years of Leadership/Military Science plus Smarter Balanced level 3 or "
        "higher in one subject and 2 or higher in the other",
        _MILITARY | _SBAC,
        lambda m: m.military_science_years >= 2 and _sbac_3_and_2(m),
        confirmed=False,
    ),
    Rule(
        "P12",
        _P,
        "Registered pre-apprenticeship completion",
        _PRE,
        lambda m: m.pre_apprenticeship == "REGISTERED",
        introduced_with="pre_apprenticeship",
        confirmed=False,
    ),
    Rule(
        "A1",
        _A,
        "CTE pathway completion",
        _CTE,
        lambda m: m.cte_pathway,
    ),
    Rule(
        "A2",
        _A,
        "Smarter Balanced level 2 or higher in both ELA and mathematics",
        _SBAC,
        lambda m: _sbac_both(m, 2),
    ),
    Rule(
        "A3",
        _A,
        "One semester of college credit, C- or better",
        _CREDIT,
        lambda m: m.college_credit_semesters >= 1,
    ),
    Rule(
        "A4",
        _A,
        "a-g completion",
        _AG,
        lambda m: m.ag_complete,
    ),
    Rule(
        "A5",
        _A,
        "Two years of Leadership/Military Science",
        _MILITARY,
        lambda m: m.military_science_years >= 2,
        confirmed=False,
    ),
    Rule(
        "A6",
        _A,
        "Non-registered pre-apprenticeship completion",
        _PRE,
        lambda m: m.pre_apprenticeship == "NONREGISTERED",
        introduced_with="pre_apprenticeship",
        confirmed=False,
    ),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}

# What a field a layout lacks might have held, for the question "could this
# rule have been met?". Levels are tested at their best: every rule reading
# them asks for a minimum.
_POSSIBLE: dict[str, tuple[Any, ...]] = {
    "sbac_ela_level": (4,),
    "sbac_math_level": (4,),
    "pre_apprenticeship": ("REGISTERED", "NONREGISTERED"),
}


def _could_be_met(rule: Rule, measures: Measures, layout: Layout) -> bool:
    absent = sorted(column for column in rule.needs if not layout.has(column))
    choices = [_POSSIBLE[column] for column in absent]
    for values in itertools.product(*choices):
        if rule.test(replace(measures, **dict(zip(absent, values, strict=True)))):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the rules place a student, and why."""

    level: Level | None  # None: the release lacks what a deciding rule needs
    at_least: Level  # what the rules that could be applied establish
    met: tuple[Rule, ...]  # the rules met at `at_least` (empty at Not Prepared)
    not_applied: tuple[Rule, ...]  # rules that could have placed higher
    reason: str

    @property
    def derivable(self) -> bool:
        return self.level is not None


def place(measures: Measures, layout: Layout) -> Placement:
    """The student's level under the rules in force for `layout`."""
    if not measures.graduated:
        return Placement(
            Level.NOT_PREPARED,
            Level.NOT_PREPARED,
            (),
            (),
            "Did not graduate: only graduates can be Prepared or Approaching Prepared.",
        )

    in_force = [rule for rule in RULES if rule.in_force_for(layout)]
    applied = [rule for rule in in_force if rule.applies_to(layout)]
    reached = Level.NOT_PREPARED
    met: list[Rule] = []
    for rule in applied:
        if rule.level >= reached and rule.test(measures):
            if rule.level > reached:
                reached, met = rule.level, []
            met.append(rule)

    # Rules of the year that the release cannot apply matter only where they
    # could have placed the student higher than the rules that were applied.
    missing = tuple(
        rule
        for rule in in_force
        if not rule.applies_to(layout)
        and rule.level > reached
        and _could_be_met(rule, measures, layout)
    )
    names = ", ".join(rule.id for rule in met)
    if missing:
        absent = sorted(
            {c for rule in missing for c in rule.needs} - set(layout.columns)
        )
        return Placement(
            None,
            reached,
            tuple(met),
            missing,
            f"Not derivable from layout {layout.name}: it has no "
            f"{', '.join(absent)}, which rules "
            f"{', '.join(rule.id for rule in missing)} need. The rules that could "
            f"be applied place the student at {reached.label} at least"
            + (f" ({names})." if met else "."),
        )
    if not met:
        return Placement(
            Level.NOT_PREPARED,
            Level.NOT_PREPARED,
            (),
            (),
            "Graduated but met no measure of Prepared or Approaching Prepared.",
        )
    return Placement(
        reached,
        reached,
        tuple(met),
        (),
        f"Graduated and met {names}.",
    )
