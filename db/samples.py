"""Made-up CCI student files shaped like a real graduation cohort.

`write_cci_sample` writes one student record per member of each school's
four-year graduation cohort in a Dashboard graduation indicator file
(`graddownload2019.txt`). Per school, the number of students, the number in
each student group, and (where the file publishes it) the number of graduates
are the file's; everything about a student is invented: names from a built-in
list, birth dates, SSIDs from a keyed permutation, and CCI measures drawn
from a per-student readiness score, so that measures go together the way they
do in real cohorts and non-graduates rarely meet any.

`write_ltel_sample` does the same for long-term English learners: per school
of a Dashboard English Learner Progress Indicator file
(`elpidownload2019.txt`), as many English learners as the file counts, each
given a grade, years in US schools and test results; those whom Education
Code 313.1 designates LTEL or at risk are written.

Nothing here reads or derives from real student records. The output is the
same, byte for byte, for the same seed, year, layout and input file (on the
same Python version: `random`'s algorithms are only stable within one).
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import math
import operator
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Final, TextIO

from db.directory import read_directory, read_tab_file
from db.errors import EnglishLearnerFileError, GraduationFileError
from db.layouts import STUDENT_GROUPS, Layout, layout_for

__all__ = [
    "FLAG_GROUPS",
    "RACE_GROUPS",
    "LtelSampleStats",
    "SampleStats",
    "SchoolCohort",
    "SchoolLearners",
    "ltel_designation",
    "school_cohorts",
    "school_learners",
    "write_cci_sample",
    "write_ltel_sample",
]

Progress = Callable[[int, int], None]

# Race/ethnicity groups: each student belongs to at most one.
RACE_GROUPS: Final = ("AA", "AI", "AS", "FI", "HI", "PI", "WH", "MR")
# Program and circumstance groups: a student may carry any number of them.
FLAG_GROUPS: Final = ("EL", "SED", "SWD", "FOS", "HOM")

_GRAD_COLUMNS: Final = (
    "cds",
    "rtype",
    "schoolname",
    "charter_flag",
    "studentgroup",
    "currnumer",
    "currdenom",
)
# The 2019 Dashboard's statewide four-year rate, used when the file has no
# state row to take it from.
_DEFAULT_STATE_RATE: Final = 0.859


@dataclass(frozen=True, slots=True)
class SchoolCohort:
    """One school's four-year graduation cohort as the Dashboard file gives it."""

    cds: str
    name: str
    charter: bool
    students: int  # currdenom of the ALL row
    graduates: int | None  # currnumer of the ALL row; None where suppressed
    groups: dict[str, int] = field(default_factory=dict)  # currdenom by group

    def group_counts(self) -> dict[str, int]:
        """How many of the school's sample students carry each group.

        The published count, capped at the cohort size; race groups are
        capped so that together they never exceed it (the file's race rows
        sometimes add up to more students than the ALL row). A group with no
        row has no students.
        """
        counts: dict[str, int] = {}
        remaining = self.students
        for group in RACE_GROUPS:
            counts[group] = min(self.groups.get(group, 0), remaining)
            remaining -= counts[group]
        for group in FLAG_GROUPS:
            counts[group] = min(self.groups.get(group, 0), self.students)
        return counts


@dataclass(frozen=True, slots=True)
class SampleStats:
    """What a sample file holds."""

    schools: int
    students: int
    graduates: int
    drawn_graduate_counts: int  # schools whose graduate count was suppressed


def school_cohorts(grad_path: Path) -> dict[str, SchoolCohort]:
    """Every school (rtype S) of a Dashboard graduation file, in file order."""
    cohorts, _ = _read_graduation_file(grad_path)
    return cohorts


def write_cci_sample(
    grad_path: Path,
    out: TextIO,
    *,
    seed: int,
    year: int = 2019,
    layout: Layout | None = None,
    progress: Progress | None = None,
) -> SampleStats:
    """Write a made-up CCI student file for every school of a graduation file.

    `out` receives UTF-8 CSV text (open it with newline="" and
    encoding="utf-8"): a header row of the layout's columns, then one row per
    student, written as it is made. `progress` is called after each school
    with (students written, students in all).

    Raises `GraduationFileError` for a malformed graduation file and
    `ValueError` for a layout with a column this generator cannot fill.
    """
    layout = layout or layout_for("cci", year)
    unknown = [column for column in layout.columns if column not in _COLUMNS]
    if unknown:
        raise ValueError(f"layout {layout.name} has unknown columns: {unknown}")

    cohorts, state_rate = _read_graduation_file(grad_path)
    total = sum(cohort.students for cohort in cohorts.values())
    ssids = _SsidSequence(seed)
    birthdays = _Birthdays(year)
    columns = layout.columns
    row_of = operator.itemgetter(*columns)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)

    written = graduates = drawn = 0
    for cohort in cohorts.values():
        rng = random.Random(_derive_seed(seed, "school", cohort.cds))
        if cohort.graduates is None:
            drawn += 1

        students = _cohort_students(cohort, rng, state_rate, birthdays, ssids)
        for student in students:
            writer.writerow(row_of(student))
            graduates += student["graduated"] == "Y"
        written += cohort.students

        if progress is not None:
            progress(written, total)

    return SampleStats(
        schools=len(cohorts),
        students=written,
        graduates=graduates,
        drawn_graduate_counts=drawn,
    )


# Reading the graduation file -------------------------------------------------


def _read_graduation_file(path: Path) -> tuple[dict[str, SchoolCohort], float]:
    rows: dict[str, dict[str, tuple[int | None, int]]] = {}
    names: dict[str, tuple[str, bool, int]] = {}
    state_rate = _DEFAULT_STATE_RATE

    lines = read_tab_file(path, required=_GRAD_COLUMNS, error=GraduationFileError)
    for line, row in lines:
        rtype = row["rtype"].strip()
        group = row["studentgroup"].strip()
        if rtype == "X" and group == "ALL":
            numer = _count(path, line, row, "currnumer")
            denom = _count(path, line, row, "currdenom")
            if numer is not None and denom:
                state_rate = numer / denom
        # Groups the CCI layouts have no code for (LTEL, in later files) are
        # left out, as are LEA and state rows.
        if rtype != "S" or (group != "ALL" and group not in STUDENT_GROUPS):
            continue

        cds = row["cds"].strip()
        if len(cds) != 14 or not cds.isascii() or not cds.isdigit():
            raise GraduationFileError(
                path, line, "cds", f"CDS code {cds!r} is not 14 digits"
            )
        school = rows.setdefault(cds, {})
        names.setdefault(
            cds, (row["schoolname"].strip(), row["charter_flag"].strip() == "Y", line)
        )
        if group in school:
            raise GraduationFileError(
                path, line, "studentgroup", f"second {group} row for school {cds}"
            )
        school[group] = _group_counts(path, line, row, cds, group)

    cohorts: dict[str, SchoolCohort] = {}
    for cds, school in rows.items():
        name, charter, first_line = names[cds]
        if "ALL" not in school:
            raise GraduationFileError(
                path, first_line, "studentgroup", f"school {cds} has no ALL row"
            )
        graduates, students = school.pop("ALL")
        cohorts[cds] = SchoolCohort(
            cds=cds,
            name=name,
            charter=charter,
            students=students,
            graduates=graduates,
            groups={group: denom for group, (_, denom) in school.items()},
        )
    return cohorts, state_rate


def _group_counts(
    path: Path, line: int, row: dict[str, str], cds: str, group: str
) -> tuple[int | None, int]:
    numer = _count(path, line, row, "currnumer")
    denom = _count(path, line, row, "currdenom")
    if denom is None:
        raise GraduationFileError(
            path, line, "currdenom", f"no cohort size for {group} at {cds}"
        )
    if numer is not None and numer > denom:
        raise GraduationFileError(
            path,
            line,
            "currnumer",
            f"{numer} graduates exceed the cohort of {denom} ({group} at {cds})",
        )
    return numer, denom


def _count(path: Path, line: int, row: dict[str, str], column: str) -> int | None:
    raw = row[column].strip()
    if not raw:
        return None  # suppressed for privacy (small n)
    if not raw.isascii() or not raw.isdigit():
        raise GraduationFileError(path, line, column, f"{raw!r} is not a whole number")
    return int(raw)


# Making up one school's students ---------------------------------------------

# Mean readiness, set so that about 43% of the statewide sample is Prepared by
# the CCI rules (the 2019 Dashboard reported 44%).
_MEAN: Final = -0.08
_RACE_SHIFT: Final = {
    "AA": -0.35, "AI": -0.35, "AS": 0.55, "FI": 0.25, "HI": -0.15,
    "PI": -0.2, "WH": 0.3, "MR": 0.2, None: 0.0,
}  # fmt: skip
_GROUP_SHIFT: Final = {
    "EL": -1.0, "SED": -0.35, "SWD": -1.2, "FOS": -0.5, "HOM": -0.4
}  # fmt: skip

# Relative chances, by race group, of carrying each flag group; a student
# already in HOM or FOS is likelier to be SED, and so on (see _flag_weight).
_FLAG_RACE_WEIGHT: Final = {
    "HOM": {"AA": 1.6, "AI": 1.4, "HI": 1.2, "PI": 1.2, "WH": 0.8, "AS": 0.4},
    "FOS": {"AA": 2.4, "AI": 2.2, "HI": 1.0, "WH": 1.0, "MR": 1.2, "AS": 0.3},
    "EL": {
        "HI": 3.0, "AS": 2.2, "PI": 1.5, "FI": 1.0, "AI": 0.5, "AA": 0.2,
        "WH": 0.4, "MR": 0.2,
    },
    "SED": {
        "HI": 2.0, "AA": 1.8, "AI": 1.8, "PI": 1.5, "FI": 0.9, "AS": 0.8,
        "WH": 0.6, "MR": 0.8,
    },
    "SWD": {"AA": 1.2, "AS": 0.6},
}  # fmt: skip
_GROUP_ORDER: Final = {group: order for order, group in enumerate(STUDENT_GROUPS)}
# Order matters: each group's weights look at the groups drawn before it.
_FLAG_ORDER: Final = ("HOM", "FOS", "EL", "SED", "SWD")


@dataclass(slots=True)
class _Student:
    race: str | None
    groups: set[str]
    readiness: float  # a latent score; higher means likelier to meet measures
    graduated: bool = False


def _cohort_students(
    cohort: SchoolCohort,
    rng: random.Random,
    state_rate: float,
    birthdays: _Birthdays,
    ssids: _SsidSequence,
) -> Iterator[dict[str, str]]:
    students = _draw_groups(cohort, rng, state_rate)
    graduates = _graduate_count(cohort, rng, state_rate)
    _draw_graduates(students, graduates, rng)

    offers_ib = rng.random() < 0.05
    for student in students:
        record = _identity(rng, birthdays, ssids.next())
        record["school_cds"] = cohort.cds
        record["student_groups"] = _group_codes(student)
        record.update(_measures(student, rng, offers_ib))
        yield record


def _group_codes(student: _Student) -> str:
    codes = sorted(student.groups, key=_GROUP_ORDER.__getitem__)
    if student.race is not None:
        codes.insert(0, student.race)  # race codes come first in STUDENT_GROUPS
    return ";".join(codes)


def _draw_groups(
    cohort: SchoolCohort, rng: random.Random, state_rate: float
) -> list[_Student]:
    counts = cohort.group_counts()
    races: list[str | None] = [
        race for race in RACE_GROUPS for _ in range(counts[race])
    ]
    races += [None] * (cohort.students - len(races))  # race not reported
    rng.shuffle(races)

    school_shift = rng.gauss(0.0, 0.35)
    if cohort.graduates is not None and cohort.students:
        # Schools that graduate fewer of their students also prepare fewer.
        rate = cohort.graduates / cohort.students
        school_shift += 0.35 * (_logit(rate) - _logit(state_rate))

    students = [
        _Student(race, set(), school_shift + _RACE_SHIFT[race] + rng.gauss(_MEAN, 1.0))
        for race in races
    ]
    for group in _FLAG_ORDER:
        if not counts[group]:
            continue
        weights = [_flag_weight(group, student) for student in students]
        for index in _weighted_pick(weights, counts[group], rng):
            students[index].groups.add(group)
            students[index].readiness += _GROUP_SHIFT[group]
    return students


def _flag_weight(group: str, student: _Student) -> float:
    weight = _FLAG_RACE_WEIGHT[group].get(student.race or "", 1.0)
    if group == "EL" and "HOM" in student.groups:
        weight *= 1.3
    if group == "SED":
        weight *= 3.0 if "EL" in student.groups else 1.0
        weight *= 6.0 if student.groups & {"HOM", "FOS"} else 1.0
    if group == "SWD":
        weight *= 1.5 if "FOS" in student.groups else 1.0
    return weight


def _graduate_count(cohort: SchoolCohort, rng: random.Random, state_rate: float) -> int:
    if cohort.graduates is not None:
        return cohort.graduates
    # Suppressed (a handful of students): a binomial draw at the state rate.
    return sum(rng.random() < state_rate for _ in range(cohort.students))


def _draw_graduates(students: list[_Student], count: int, rng: random.Random) -> None:
    weights = [math.exp(1.5 * student.readiness) for student in students]
    for index in _weighted_pick(weights, count, rng):
        students[index].graduated = True


def _weighted_pick(
    weights: Sequence[float], count: int, rng: random.Random
) -> list[int]:
    """Indices of `count` items drawn without replacement, chance by weight.

    Efraimidis and Spirakis (2006): each item gets the key log(u) / weight,
    u uniform in (0, 1]; the `count` largest keys are the draw.
    """
    keys = [math.log(1.0 - rng.random()) / weight for weight in weights]
    return heapq.nlargest(count, range(len(keys)), key=keys.__getitem__)


def _measures(student: _Student, rng: random.Random, offers_ib: bool) -> dict[str, str]:
    z = student.readiness
    # Students who left without a diploma rarely finished anything that counts.
    reach = 1.0 if student.graduated else 0.15

    ela, math_level = _sbac_levels(z, rng, student.graduated)

    ag = rng.random() < reach * _logistic(-0.4 + 1.7 * z)
    cte = rng.random() < reach * _logistic(-1.5 + 0.25 * z)
    ap = _count_measure(rng, reach * _logistic(-1.45 + 1.4 * z), 0.3 + 0.2 * z, 15)
    ib = 0
    if offers_ib:
        ib = _count_measure(rng, reach * _logistic(-1.6 + 1.0 * z), 0.55, 6)
    college = _count_measure(rng, reach * _logistic(-2.0 + 0.6 * z), 0.45, 8)

    bilingual = student.race in {"HI", "AS", "FI"} or "EL" in student.groups
    seal = rng.random() < reach * _logistic(
        -3.2 + 0.8 * z + (1.2 if bilingual else 0.0)
    )
    military = 0
    if rng.random() < reach * 0.04:
        military = rng.choice((1, 2, 2, 3, 4))
    apprenticeship = "NONE"
    draw = rng.random()
    if draw < reach * 0.006:
        apprenticeship = "REGISTERED"
    elif draw < reach * 0.018:
        apprenticeship = "NONREGISTERED"

    return {
        "graduated": _flag(student.graduated),
        "ag_complete": _flag(ag),
        "cte_pathway": _flag(cte),
        "ap_exams_passed": str(ap),
        "ib_exams_passed": str(ib),
        "college_credit_semesters": str(college),
        "sbac_ela_level": ela,
        "sbac_math_level": math_level,
        "seal_of_biliteracy": _flag(seal),
        "military_science_years": str(military),
        "pre_apprenticeship": apprenticeship,
    }


def _sbac_levels(z: float, rng: random.Random, graduated: bool) -> tuple[str, str]:
    if rng.random() < (0.04 if graduated else 0.2):
        return "", ""  # absent, exempt or opted out
    ela = _level(0.85 * z + rng.gauss(0.25, 0.6))
    maths = _level(0.85 * z + rng.gauss(-0.45, 0.6))
    if rng.random() < 0.01:
        maths = ""  # tested in one subject only
    return ela, maths


def _level(score: float) -> str:
    if score < -0.9:
        return "1"
    if score < -0.05:
        return "2"
    if score < 0.9:
        return "3"
    return "4"


def _count_measure(rng: random.Random, chance: float, more: float, cap: int) -> int:
    """0 with probability 1 - chance, else 1 plus a geometric run, capped."""
    if rng.random() >= chance:
        return 0
    count = 1
    more = min(max(more, 0.05), 0.85)
    while count < cap and rng.random() < more:
        count += 1
    return count


# Long-term English learners ---------------------------------------------------

_ELPI_COLUMNS: Final = (
    "cds",
    "rtype",
    "schoolname",
    "charter_flag",
    "currprogressed",
    "currmaintainPL4",
    "currmaintainOth",
    "currdeclined",
    "currdenom",
)
# The four ELPI outcomes, in the file's column order: progressed at least one
# level, kept level 4, kept a lower level, declined.
_OUTCOMES: Final = ("progressed", "maintained_top", "maintained_other", "declined")
# Statewide shares of the outcomes (the 2019 file's state row), used to draw
# the outcomes of a school whose counts are suppressed.
_STATE_OUTCOMES: Final = (363_028, 45_014, 266_260, 169_955)
# English learners by grade 1-12, relative (the shape of California's EL
# enrollment: most in the early grades, fewer each year after).
_EL_GRADE_WEIGHTS: Final = (152, 145, 134, 105, 85, 70, 62, 56, 58, 52, 45, 40)
# The summative ELPAC was first given in spring 2018.
_FIRST_ELPAC_YEAR: Final = 2018
# SSIDs of this sample come from the same keyed permutation as the CCI
# sample's, from this index on, so the two files never share an SSID.
_LTEL_SSID_START: Final = 100_000_000


@dataclass(frozen=True, slots=True)
class SchoolLearners:
    """One school's English learners as the ELPI file counts them."""

    cds: str
    name: str
    charter: bool
    learners: int | None  # currdenom; None where suppressed (10 or fewer)
    outcomes: tuple[int, int, int, int] | None  # by _OUTCOMES; None if suppressed


@dataclass(frozen=True, slots=True)
class LtelSampleStats:
    """What an LTEL sample file holds, and the population it was drawn from."""

    schools: int
    english_learners: int  # drawn, one per learner the file counts
    ltel: int
    at_risk: int
    drawn_counts: int  # schools whose suppressed count was drawn


def school_learners(elpi_path: Path) -> dict[str, SchoolLearners]:
    """Every school (rtype S) of an ELPI file, in file order.

    Raises `EnglishLearnerFileError` for a malformed file: a missing column,
    a count that is not a whole number, outcomes that do not add up to the
    denominator, a school listed twice.
    """
    schools: dict[str, SchoolLearners] = {}
    rows = read_tab_file(
        elpi_path, required=_ELPI_COLUMNS, error=EnglishLearnerFileError
    )
    for line, row in rows:
        if row["rtype"].strip() != "S":
            continue
        cds = row["cds"].strip()
        if len(cds) != 14 or not cds.isascii() or not cds.isdigit():
            raise EnglishLearnerFileError(
                elpi_path, line, "cds", f"CDS code {cds!r} is not 14 digits"
            )
        if cds in schools:
            raise EnglishLearnerFileError(
                elpi_path, line, "cds", f"school {cds} is listed twice"
            )
        columns = ("currprogressed", "currmaintainPL4", "currmaintainOth")
        counts = [
            _learner_count(elpi_path, line, row, column)
            for column in (*columns, "currdeclined", "currdenom")
        ]
        *outcomes, learners = counts
        known = None
        if learners is not None:
            if None in outcomes or sum(o or 0 for o in outcomes) != learners:
                raise EnglishLearnerFileError(
                    elpi_path,
                    line,
                    "currdenom",
                    f"the four outcomes of school {cds} do not add up to {learners}",
                )
            progressed, top, other, declined = (o or 0 for o in outcomes)
            known = (progressed, top, other, declined)
        schools[cds] = SchoolLearners(
            cds=cds,
            name=row["schoolname"].strip(),
            charter=row["charter_flag"].strip() == "Y",
            learners=learners,
            outcomes=known,
        )
    return schools


def _learner_count(
    path: Path, line: int, row: dict[str, str], column: str
) -> int | None:
    raw = row[column].strip()
    if not raw:
        return None  # suppressed for privacy (small n)
    if not raw.isascii() or not raw.isdigit():
        raise EnglishLearnerFileError(
            path, line, column, f"{raw!r} is not a whole number"
        )
    return int(raw)


def ltel_designation(
    grade: int,
    years_in_us_schools: int,
    elpac_prior_year: int | None,
    elpac_two_years_prior: int | None,
    ela_prior_year: int | None,
) -> str | None:
    """LTEL, AT_RISK or None, by California Education Code 313.1.

    LTEL: grades 6-12, six or more years in US schools, an ELPAC level that
    stayed the same or fell over the two prior years, and (grades 6-9) the
    prior year's ELA standard not met. At risk: grades 3-12, four or five
    years, the prior year's ELPAC at level 3 (moderately developed, the
    ELPAC's "intermediate") or below, and (grades 3-9) the prior year's ELA
    standard not met or nearly met. A missing result does not exclude.
    """
    if 6 <= grade <= 12 and years_in_us_schools >= 6:
        stalled = (
            elpac_prior_year is None
            or elpac_two_years_prior is None
            or elpac_prior_year <= elpac_two_years_prior
        )
        ela_low = grade > 9 or ela_prior_year is None or ela_prior_year == 1
        if stalled and ela_low:
            return "LTEL"
    if 3 <= grade <= 12 and years_in_us_schools in (4, 5):
        elpac_low = elpac_prior_year is None or elpac_prior_year <= 3
        ela_low = grade > 9 or ela_prior_year is None or ela_prior_year <= 2
        if elpac_low and ela_low:
            return "AT_RISK"
    return None


def write_ltel_sample(
    elpi_path: Path,
    directory_path: Path,
    out: TextIO,
    *,
    seed: int,
    year: int = 2019,
    layout: Layout | None = None,
    progress: Progress | None = None,
) -> LtelSampleStats:
    """Write a made-up LTEL and at-risk student file from an ELPI file.

    Per school of `elpi_path`, as many English learners as its `currdenom`
    (the ELPI denominator: English learners with this year's and last year's
    ELPAC results), with last-to-this-year ELPAC changes in the file's
    proportions. A suppressed school (10 or fewer learners) gets a count
    drawn from 1 to 10 and outcomes drawn at the state's shares. Grades come
    from the school's grade span in the directory file `directory_path`.
    Each learner designated LTEL or AT_RISK (`ltel_designation`) is written
    as one row of `out` (UTF-8 CSV, open with newline=""); `progress` is
    called after each school with (learners drawn, learners in all).
    """
    layout = layout or layout_for("ltel", year)
    unknown = [column for column in layout.columns if column not in _LTEL_COLUMNS]
    if unknown:
        raise ValueError(f"layout {layout.name} has unknown columns: {unknown}")

    schools = school_learners(elpi_path)
    spans = _grade_spans(directory_path)
    counts = {
        cds: school.learners
        if school.learners is not None
        else random.Random(_derive_seed(seed, "ltel-count", cds)).randint(1, 10)
        for cds, school in schools.items()
    }
    total = sum(counts.values())
    ssids = _SsidSequence(seed, first=_LTEL_SSID_START)
    birthdays = {grade: _Birthdays(year + 12 - grade) for grade in range(1, 13)}
    row_of = operator.itemgetter(*layout.columns)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(layout.columns)

    learners = ltel = at_risk = drawn = 0
    for school in schools.values():
        rng = random.Random(_derive_seed(seed, "ltel", school.cds))
        outcomes = school.outcomes
        if outcomes is None:
            drawn += 1
            outcomes = _drawn_outcomes(counts[school.cds], rng)
        grades = spans.get(school.cds) or _ALL_GRADES

        for outcome, count in zip(_OUTCOMES, outcomes, strict=True):
            for _ in range(count):
                record = _learner(rng, year, grades, outcome)
                learners += 1
                if record is None:
                    continue
                grade = int(record["grade"])
                record.update(_identity(rng, birthdays[grade], ssids.next()))
                record["school_cds"] = school.cds
                writer.writerow(row_of(record))
                if record["designation"] == "LTEL":
                    ltel += 1
                else:
                    at_risk += 1

        if progress is not None:
            progress(learners, total)

    return LtelSampleStats(
        schools=len(schools),
        english_learners=learners,
        ltel=ltel,
        at_risk=at_risk,
        drawn_counts=drawn,
    )


_ALL_GRADES: Final = tuple(range(1, 13))


def _grade_spans(directory_path: Path) -> dict[str, tuple[int, ...]]:
    """Grades 1-12 each school of the directory serves.

    From GSserved ("K-5", "9-12", "P-8", "12"); where it is empty or names
    no grade 1-12, from the school type; else every grade.
    """
    spans: dict[str, tuple[int, ...]] = {}
    for org in read_directory(directory_path):
        if org.kind not in ("school", "charter"):
            continue
        grades = _parse_grades(org.grades_served) or _grades_by_type(org.soc_type)
        if grades:
            spans[org.cds_code] = grades
    return spans


def _parse_grades(served: str | None) -> tuple[int, ...]:
    if not served:
        return ()
    low, _, high = served.partition("-")
    bounds = []
    for text in (low, high or low):
        text = text.strip().upper()
        if text in ("P", "K", "TK"):
            bounds.append(0)
        elif text.isdigit():
            bounds.append(int(text))
        else:
            return ()  # "Adult" and the like
    return tuple(g for g in range(bounds[0], bounds[1] + 1) if 1 <= g <= 12)


def _grades_by_type(soc_type: str | None) -> tuple[int, ...]:
    kind = (soc_type or "").lower()
    if kind.startswith("elemen"):
        return tuple(range(1, 7))
    if "junior high" in kind:
        return (7, 8)
    if "middle" in kind:
        return (6, 7, 8)
    if "high" in kind:
        return (9, 10, 11, 12)
    return ()


def _drawn_outcomes(count: int, rng: random.Random) -> tuple[int, int, int, int]:
    drawn = [0, 0, 0, 0]
    for _ in range(count):
        drawn[rng.choices(range(4), weights=_STATE_OUTCOMES)[0]] += 1
    return (drawn[0], drawn[1], drawn[2], drawn[3])


# The prior year's ELPAC level, by years in US schools: newcomers start low,
# and learners long in US schools cluster at levels 2 and 3.
_PRIOR_ELPAC: Final = {
    "new": (0.45, 0.35, 0.15, 0.05),
    "middle": (0.15, 0.35, 0.35, 0.15),
    "long": (0.10, 0.30, 0.40, 0.20),
}
# The prior year's Smarter Balanced ELA level, by that year's ELPAC level.
_ELA_BY_ELPAC: Final = {
    1: (0.90, 0.08, 0.02, 0.0),
    2: (0.78, 0.18, 0.04, 0.0),
    3: (0.50, 0.35, 0.13, 0.02),
    4: (0.20, 0.40, 0.32, 0.08),
}
_LEVELS: Final = (1, 2, 3, 4)


def _learner(
    rng: random.Random, year: int, grades: Sequence[int], outcome: str
) -> dict[str, str] | None:
    """One English learner's school record, or None if not LTEL or at risk."""
    weights = [_EL_GRADE_WEIGHTS[grade - 1] for grade in grades]
    grade = rng.choices(grades, weights=weights)[0]

    # Most learners have been in US schools since kindergarten; newcomers
    # are a larger share of the older grades.
    since_kindergarten = 0.85 if grade <= 5 else 0.75 if grade <= 8 else 0.55
    if rng.random() < since_kindergarten:
        years = grade + 1
    else:
        years = rng.randint(1, grade)

    band = "new" if years <= 2 else "middle" if years <= 5 else "long"
    prior = rng.choices(_LEVELS, weights=_PRIOR_ELPAC[band])[0]
    # This year's level follows the school's ELPI outcome (on the ELPAC's
    # four levels; the ELPI's six split levels 2 and 3 in two).
    if outcome == "progressed":
        prior = min(prior, 3)
        current = prior + 1
    elif outcome == "maintained_top":
        prior = current = 4
    elif outcome == "maintained_other":
        prior = current = min(prior, 3)
    else:
        prior = max(prior, 2)
        current = prior - 1

    two_prior = None
    if year - 2 >= _FIRST_ELPAC_YEAR and years >= 3 and grade >= 2:
        drift = rng.choices((-1, 0, 1), weights=(0.4, 0.45, 0.15))[0]
        two_prior = min(4, max(1, prior + drift))

    # Smarter Balanced is taken in grades 3-8 and 11: last year's result
    # exists for grades 4-9 and 12, for learners already here last year.
    ela = None
    if (4 <= grade <= 9 or grade == 12) and years >= 2 and rng.random() > 0.05:
        ela = rng.choices(_LEVELS, weights=_ELA_BY_ELPAC[prior])[0]

    designation = ltel_designation(grade, years, prior, two_prior, ela)
    if designation is None:
        return None
    return {
        "grade": str(grade),
        "years_in_us_schools": str(years),
        "elpac_level_current": str(current),
        "elpac_level_prior_year": str(prior),
        "elpac_level_two_years_prior": "" if two_prior is None else str(two_prior),
        "sbac_ela_level_prior_year": "" if ela is None else str(ela),
        "designation": designation,
    }


_LTEL_COLUMNS: Final = frozenset(
    {
        "ssid", "last_name", "first_name", "birth_date", "school_cds", "grade",
        "years_in_us_schools", "elpac_level_current", "elpac_level_prior_year",
        "elpac_level_two_years_prior", "sbac_ela_level_prior_year", "designation",
    }
)  # fmt: skip


# Names, birth dates and SSIDs ---------------------------------------------------


def _identity(rng: random.Random, birthdays: _Birthdays, ssid: str) -> dict[str, str]:
    draw = rng.random()
    if draw < 0.003:
        gender, first_names = "X", _NEUTRAL_NAMES
    elif draw < 0.5015:
        gender, first_names = "F", _FEMALE_NAMES
    else:
        gender, first_names = "M", _MALE_NAMES

    return {
        "ssid": ssid,
        "last_name": rng.choice(_LAST_NAMES),
        "first_name": rng.choice(first_names),
        "birth_date": birthdays.draw(rng),
        "gender": gender,
    }


class _Birthdays:
    """Birth dates for seniors of the class of `year`, as YYYY-MM-DD.

    On time: 18 by September 1 of the senior year. A few started school a
    year late or were held back; fewer are a year ahead.
    """

    def __init__(self, year: int) -> None:
        first = date(year - 20, 9, 2)
        days = (date(year - 17, 9, 2) - first).days
        self._dates = [(first + timedelta(days=d)).isoformat() for d in range(days)]
        self._late = 0
        self._on_time = (date(year - 19, 9, 2) - first).days
        self._early = (date(year - 18, 9, 2) - first).days

    def draw(self, rng: random.Random) -> str:
        start = self._on_time
        chance = rng.random()
        if chance < 0.05:
            start = self._late
        elif chance < 0.06:
            start = self._early
        return self._dates[start + rng.randrange(365)]


class _SsidSequence:
    """Distinct 10-digit SSIDs not starting with 0, scrambled by the seed.

    The n-th SSID is 10**9 + P(n) for a keyed permutation P of
    [0, 9 * 10**9): a four-round Feistel network on 34 bits, walked until it
    lands inside the range. Distinct n give distinct SSIDs without keeping a
    set of those already used.
    """

    _SPAN: Final = 9 * 10**9
    _HALF: Final = 17
    _MASK: Final = (1 << 17) - 1

    def __init__(self, seed: int, first: int = 0) -> None:
        digest = hashlib.sha256(f"ssid:{seed}".encode()).digest()
        self._keys = [int.from_bytes(digest[i : i + 4], "big") for i in (0, 4, 8, 12)]
        self._count = first

    def next(self) -> str:
        value = self._count
        self._count += 1
        while True:
            value = self._scramble(value)
            if value < self._SPAN:
                return str(10**9 + value)

    def _scramble(self, value: int) -> int:
        left, right = value >> self._HALF, value & self._MASK
        for key in self._keys:
            mixed = ((right ^ key) * 0x9E3779B1 + key) & 0xFFFFFFFF
            left, right = right, left ^ ((mixed >> 11) & self._MASK)
        return (left << self._HALF) | right


def _derive_seed(seed: int, *parts: str) -> int:
    text = ":".join((str(seed), *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(rate: float) -> float:
    rate = min(max(rate, 0.02), 0.98)
    return math.log(rate / (1.0 - rate))


def _flag(value: bool) -> str:
    return "Y" if value else "N"


_COLUMNS: Final = frozenset(
    {
        "ssid", "last_name", "first_name", "birth_date", "gender", "school_cds",
        "student_groups", "graduated", "ag_complete", "cte_pathway",
        "ap_exams_passed", "ib_exams_passed", "college_credit_semesters",
        "sbac_ela_level", "sbac_math_level", "seal_of_biliteracy",
        "military_science_years", "pre_apprenticeship",
    }
)  # fmt: skip


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of `text`; "_" stands for a space."""
    return tuple(word.replace("_", " ") for word in text.split())


# A few hundred given and family names common in California, of many origins.
_FEMALE_NAMES: Final = _words(
    """
    Abigail Adriana Aisha Alejandra Alexa Alexandra Alicia Alina Allison Alondra
    Amanda Amaya Amelia Amira Ana Andrea Angela Angelica Anika Aniyah Anna Ariana
    Arianna Ashley Aubrey Audrey Ava Avery Bianca Brianna Brooke Camila Carmen
    Caroline Catalina Chloe Claire Daisy Daniela Destiny Diana Elena Elizabeth
    Ella Emely Emily Emma Esmeralda Esther Evelyn Fatima Gabriela Genesis Grace
    Guadalupe Hailey Hana Hannah Harper Isabel Isabella Itzel Jacqueline Jade
    Jasmine Jennifer Jessica Jimena Jocelyn Julia Julianna Kaitlyn Karen Karina
    Kayla Kimberly Laila Layla Leah Leilani Lily Lucia Luna Madison Malia Maria
    Mariana Marisol Maya Megan Mei Melanie Mia Michelle Mikaela Mila Min-ji Nadia
    Naomi Natalia Natalie Nayeli Nevaeh Nicole Noor Olivia Paola Priya Rachel
    Rebecca Renata Riya Rosa Ruby Samantha Sara Sarah Savannah Scarlett Serenity
    Sienna Sofia Sophia Stephanie Tanvi Thuy Valentina Valeria Vanessa Victoria
    Vivian Ximena Yasmin Yesenia Zainab Zoe Ngoc_Anh Mary_Grace Anh Linh Sakura
    Yuna Aaliyah Imani Nia Kiara Tatiana Makayla Destinee Jazmin Xochitl Dulce
    Noelani Keira Siobhan Ingrid Freya Anya Daria Lucía Sofía Inés Zoë Chloé
    """
)
_MALE_NAMES: Final = _words(
    """
    Aaron Abraham Adam Adrian Aiden Alan Alejandro Alexander Andre Andres Andrew
    Angel Anthony Arjun Armando Arturo Ashton Benjamin Brandon Brian Bryan Caleb
    Cameron Carlos Carter Cesar Charles Christian Christopher Cristian Daniel
    Darius David Diego Dominic Dylan Eduardo Edwin Elias Elijah Emilio Emmanuel
    Eric Erick Ethan Evan Ezekiel Fernando Francisco Gabriel Gavin Giovanni
    Hector Henry Hugo Ian Isaac Isaiah Ivan Jacob Jaden Jake James Jason Javier
    Jayden Jesus John Jonathan Jordan Jorge Jose Joseph Joshua Juan Julian Justin
    Kai Kenji Kevin Khalid Kyle Leonardo Liam Logan Lucas Luis Malik Manuel Marcus
    Mario Mason Mateo Matthew Maxwell Miguel Minh Mohammed Nathan Nathaniel
    Nicholas Noah Omar Oscar Pablo Patrick Pedro Rafael Rahul Ricardo Robert Rohan
    Ryan Samuel Santiago Sebastian Sergio Seth Simon Steven Tariq Thomas Timothy
    Tristan Tyler Victor Vikram Vincent William Wyatt Xavier Yusuf Zachary
    Duc_Anh Jin Hiroshi Takumi Jun Seo-jun Min-jun Wei Hao Arash Darnell DeShawn
    Jamal Terrell Malachi Keanu Kaleo Tevita Sione Mikael Bjorn Aleksandr Dmitri
    Joaquín José Jesús Andrés Sebastián Ángel Iñaki Raphaël Björn
    """
)
_NEUTRAL_NAMES: Final = _words(
    """
    Alex Ari Avery Bailey Blake Casey Charlie Dakota Drew Eden Emerson Finley
    Hayden Jamie Jordan Jules Kai Kendall Lee Logan Marley Morgan Noa Parker
    Peyton Quinn Reese Riley River Rowan Sage Sam Skyler Taylor Rory Remy Sasha
    """
)
_LAST_NAMES: Final = _words(
    """
    Garcia Hernandez Lopez Martinez Rodriguez Gonzalez Perez Sanchez Ramirez Flores
    Torres Rivera Gomez Diaz Reyes Morales Cruz Ortiz Gutierrez Chavez Ramos Ruiz
    Mendoza Alvarez Castillo Jimenez Vasquez Moreno Herrera Medina Aguilar Vargas
    Castro Guzman Fernandez Juarez Munoz Salazar Romero Mendez Silva Rojas Estrada
    Contreras Delgado Ortega Navarro Soto Nunez Campos Vega Cervantes Sandoval
    Figueroa Luna Ibarra Rios Molina Cabrera Pacheco Dominguez Espinoza Avila
    Valdez Zamora Carrillo Robles Acosta Trujillo Velasquez Rosales Marquez
    García Hernández López Martínez Rodríguez González Pérez Sánchez Muñoz Peña
    Ibáñez Ordóñez Núñez Gómez Díaz Jiménez Vásquez
    de_la_Cruz de_Leon del_Rio Smith Johnson Williams Brown Jones Miller Davis
    Wilson Anderson Taylor Thomas Moore Jackson Martin Lee Thompson White Harris
    Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams
    Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans
    Edwards Collins Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed
    Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray
    James Hughes Price Sanders Myers Long Ross Foster Powell Jenkins Perry Russell
    Sullivan Fisher Henderson Coleman Simmons Patterson Jordan Reynolds Hamilton
    Graham Wallace Freeman Washington Jefferson Banks Gaines Mosley Dorsey Tucker
    O'Brien O'Connor O'Neill McCarthy McDonald Murray Walsh Byrne Kennedy Doyle
    Nguyen Tran Le Pham Huynh Hoang Phan Vu Vo Dang Bui Do Ho Ngo Duong Ly Truong
    Kim Park Choi Jung Kang Cho Yoon Jang Lim Han Shin Oh Seo Kwon Hwang Song
    Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo Lin Ng Wong
    Chan Cheung Leung Lau Chang Tsai Yamamoto Tanaka Suzuki Watanabe Sato Ito
    Nakamura Kobayashi Kato Yoshida Santos Reyes-Santos dela_Cruz Bautista
    Villanueva Mendoza-Ramos Aquino Castillo-Reyes Gutierrez-Luna Pascual Manalo
    Patel Shah Singh Kumar Sharma Gupta Reddy Rao Iyer Chowdhury Khan Ahmed Ali
    Hussain Rahman Hassan Ibrahim Mohamed Abdi Haile Tesfaye Okafor Adeyemi Mensah
    Nasser Haddad Khoury Sarkisian Petrosyan Hakobyan Avakian Karimi Hosseini
    Rahimi Mirzaei Cohen Levy Friedman Katz Schwartz Goldberg Novak Kowalski
    Nowak Ivanov Petrov Smirnov Kuznetsov Popescu Horvat Jensen Larsen Nielsen
    Olsen Hansen Johansson Lindqvist Müller Schmidt Schneider Fischer Weber
    Rossi Russo Ferrari Esposito Romano Bianchi Costa Oliveira Pereira Souza
    Kealoha Kahananui Fifita Tuilagi Faleolo Tupou Begay Yazzie Tsosie Nakai
    Running-Bear Two-Feathers Lefebvre Dubois Moreau Laurent Girard Bélanger
    """
)
