"""The overall CCI level: one case per rule of docs/cci-levels.md, and what a
layout without Smarter Balanced results can and cannot decide."""

from __future__ import annotations

from dataclasses import replace

import pytest

from db.cci_levels import RULES, Level, Measures, place
from db.layouts import CCI_2017, CCI_2021, CCI_2023

# A graduate who met nothing; each case below adds what one rule needs.
NOTHING = Measures(
    graduated=True,
    ag_complete=False,
    cte_pathway=False,
    ap_exams_passed=0,
    ib_exams_passed=0,
    college_credit_semesters=0,
    sbac_ela_level=None,
    sbac_math_level=None,
    seal_of_biliteracy=False,
    military_science_years=0,
    pre_apprenticeship="NONE",
)

P, A = Level.PREPARED, Level.APPROACHING_PREPARED

RULE_CASES = [
    ("P1", {"cte_pathway": True, "sbac_ela_level": 3, "sbac_math_level": 2}, P),
    ("P1", {"cte_pathway": True, "sbac_ela_level": 2, "sbac_math_level": 4}, P),
    ("P2", {"cte_pathway": True, "college_credit_semesters": 1}, P),
    ("P3", {"sbac_ela_level": 3, "sbac_math_level": 3}, P),
    ("P4", {"college_credit_semesters": 2}, P),
    ("P5", {"ap_exams_passed": 2}, P),
    ("P5", {"ib_exams_passed": 2}, P),
    ("P6", {"ag_complete": True, "cte_pathway": True}, P),
    ("P7", {"ag_complete": True, "sbac_ela_level": 2, "sbac_math_level": 3}, P),
    ("P8", {"ag_complete": True, "college_credit_semesters": 1}, P),
    ("P9", {"ag_complete": True, "ap_exams_passed": 1}, P),
    ("P9", {"ag_complete": True, "ib_exams_passed": 1}, P),
    ("P10", {"seal_of_biliteracy": True, "sbac_ela_level": 3}, P),
    (
        "P11",
        {"military_science_years": 2, "sbac_ela_level": 3, "sbac_math_level": 2},
        P,
    ),
    ("P12", {"pre_apprenticeship": "REGISTERED"}, P),
    ("A1", {"cte_pathway": True}, A),
    ("A2", {"sbac_ela_level": 2, "sbac_math_level": 2}, A),
    ("A3", {"college_credit_semesters": 1}, A),
    ("A4", {"ag_complete": True}, A),
    ("A5", {"military_science_years": 2}, A),
    ("A6", {"pre_apprenticeship": "NONREGISTERED"}, A),
]


def test_every_rule_has_a_case() -> None:
    assert {rule.id for rule in RULES} == {case[0] for case in RULE_CASES}


@pytest.mark.parametrize(("rule", "changes", "level"), RULE_CASES)
def test_a_graduate_meeting_one_rule_is_placed_by_it(
    rule: str, changes: dict[str, object], level: Level
) -> None:
    placement = place(replace(NOTHING, **changes), CCI_2023)

    assert placement.level is level
    assert placement.derivable
    assert [met.id for met in placement.met] == [rule]
    assert f"met {rule}." in placement.reason


@pytest.mark.parametrize(("rule", "changes", "level"), RULE_CASES)
def test_without_a_diploma_no_rule_counts(
    rule: str, changes: dict[str, object], level: Level
) -> None:
    placement = place(replace(NOTHING, graduated=False, **changes), CCI_2023)

    assert placement.level is Level.NOT_PREPARED
    assert placement.met == ()
    assert "Did not graduate" in placement.reason


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("nothing met", {}),
        ("one AP exam without a-g", {"ap_exams_passed": 1}),
        ("SBAC 3 and 1", {"sbac_ela_level": 3, "sbac_math_level": 1}),
        ("SBAC in one subject only", {"sbac_ela_level": 4, "sbac_math_level": None}),
        ("one year of military science", {"military_science_years": 1}),
        ("seal of biliteracy without an ELA result", {"seal_of_biliteracy": True}),
        ("one AP and one IB exam", {"ap_exams_passed": 1, "ib_exams_passed": 1}),
    ],
)
def test_a_graduate_meeting_no_rule_is_not_prepared(
    case: str, changes: dict[str, object]
) -> None:
    placement = place(replace(NOTHING, **changes), CCI_2023)

    assert placement.level is Level.NOT_PREPARED, case
    assert placement.met == ()


def test_the_highest_level_met_wins_and_all_its_rules_are_named() -> None:
    placement = place(
        replace(
            NOTHING, ag_complete=True, cte_pathway=True, college_credit_semesters=2
        ),
        CCI_2023,
    )

    assert placement.level is Level.PREPARED
    assert [rule.id for rule in placement.met] == ["P2", "P4", "P6", "P8"]


# The 2021 and 2022 releases (layout cci-2021) carry no Smarter Balanced
# results: rules P1, P3, P7, P10, P11 and A2 cannot be applied to them.


def test_2021_a_student_prepared_by_another_rule_is_still_prepared() -> None:
    placement = place(replace(NOTHING, college_credit_semesters=2), CCI_2021)

    assert placement.level is Level.PREPARED
    assert placement.not_applied == ()


def test_2021_approaching_is_not_derivable_where_a_prepared_rule_needs_sbac() -> None:
    placement = place(replace(NOTHING, ag_complete=True), CCI_2021)

    assert placement.level is None and not placement.derivable
    assert placement.at_least is Level.APPROACHING_PREPARED
    assert [rule.id for rule in placement.met] == ["A4"]
    # Only the rules this student could have met with some result: P1 needs
    # a CTE pathway, P10 a seal, P11 two years of military science.
    assert [rule.id for rule in placement.not_applied] == ["P3", "P7"]
    assert "cci-2021" in placement.reason and "sbac_ela_level" in placement.reason


def test_2021_a_graduate_meeting_nothing_else_is_not_derivable() -> None:
    placement = place(NOTHING, CCI_2021)

    assert placement.level is None
    assert placement.at_least is Level.NOT_PREPARED
    assert [rule.id for rule in placement.not_applied] == ["P3", "A2"]


def test_2021_a_student_without_a_diploma_is_not_prepared_all_the_same() -> None:
    placement = place(replace(NOTHING, graduated=False), CCI_2021)

    assert placement.level is Level.NOT_PREPARED and placement.derivable


def test_2017_pre_apprenticeship_rules_are_not_rules_of_that_year() -> None:
    measures = replace(NOTHING, pre_apprenticeship=None)

    placement = place(measures, CCI_2017)

    assert placement.level is Level.NOT_PREPARED and placement.derivable
    assert placement.not_applied == ()
