"""Made-up CCI student files, checked against the graduation file they mirror."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from db.errors import GraduationFileError, LoadError
from db.layouts import CCI_2017, STUDENT_GROUPS, Kind, Layout, layout_for
from db.samples import SampleStats, school_cohorts, write_cci_sample

DATA = Path(
    os.environ.get("SOARS_CDE_DATA")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cde"
)
GRADUATION_2019 = DATA / "graddownload2019.txt"
RACE_GROUPS = ("AA", "AI", "AS", "FI", "HI", "PI", "WH", "MR")


@dataclass
class Published:
    """The graduation file's school rows, read here without db.samples."""

    students: dict[str, int] = field(default_factory=dict)
    graduates: dict[str, int] = field(default_factory=dict)
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    charter: dict[str, bool] = field(default_factory=dict)

    def expected_groups(self, cds: str) -> dict[str, int]:
        """Group counts: as published, race groups capped at the cohort."""
        published = self.groups.get(cds, {})
        remaining = self.students[cds]
        expected = {}
        for group in STUDENT_GROUPS:
            count = min(published.get(group, 0), self.students[cds])
            if group in RACE_GROUPS:
                count = min(count, remaining)
                remaining -= count
            expected[group] = count
        return expected


@dataclass
class Recount:
    """What a user counting the sample file with csv would find."""

    header: list[str]
    students: Counter[str] = field(default_factory=Counter)
    graduates: Counter[str] = field(default_factory=Counter)
    groups: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    levels: Counter[str] = field(default_factory=Counter)
    ssids: set[str] = field(default_factory=set)
    duplicate_ssids: int = 0
    bad_values: Counter[str] = field(default_factory=Counter)
    nongraduates_meeting_a_measure: int = 0


@dataclass
class Sample:
    path: Path
    stats: SampleStats
    seconds: float
    recount: Recount


@pytest.fixture(scope="module")
def published() -> Published:
    result = Published()
    with GRADUATION_2019.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["rtype"] != "S":
                continue
            cds, group = row["cds"], row["studentgroup"]
            if group == "ALL":
                result.students[cds] = int(row["currdenom"])
                result.charter[cds] = row["charter_flag"] == "Y"
                if row["currnumer"]:
                    result.graduates[cds] = int(row["currnumer"])
            else:
                result.groups.setdefault(cds, {})[group] = int(row["currdenom"])
    return result


@pytest.fixture(scope="module")
def statewide(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    path = tmp_path_factory.mktemp("samples") / "cci-2019.csv"
    started = time.perf_counter()
    with path.open("w", newline="", encoding="utf-8") as out:
        stats = write_cci_sample(GRADUATION_2019, out, seed=2019)
    seconds = time.perf_counter() - started
    return Sample(path, stats, seconds, _recount(path, CCI_2017))


def test_the_statewide_sample_has_487017_students_in_2524_schools(
    statewide: Sample,
) -> None:
    assert statewide.stats.schools == 2_524
    assert statewide.stats.students == 487_017
    assert sum(statewide.recount.students.values()) == 487_017


def test_the_statewide_sample_is_written_in_well_under_20_seconds(
    statewide: Sample,
) -> None:
    assert statewide.seconds < 20


def test_every_school_has_its_published_cohort_size(
    statewide: Sample, published: Published
) -> None:
    assert dict(statewide.recount.students) == published.students


def test_every_school_has_its_published_group_counts(
    statewide: Sample, published: Published
) -> None:
    mismatched = [
        cds
        for cds in published.students
        if statewide.recount.groups[cds] + Counter()
        != Counter(published.expected_groups(cds)) + Counter()
    ]

    assert mismatched == []


def test_group_counts_are_the_published_ones_except_where_race_rows_overflow(
    statewide: Sample, published: Published
) -> None:
    capped = [
        cds
        for cds, groups in published.groups.items()
        if any(statewide.recount.groups[cds][g] != n for g, n in groups.items())
    ]

    # In 19 schools the race rows add up to more students than the ALL row.
    assert len(capped) == 19
    for cds in capped:
        races = sum(statewide.recount.groups[cds][g] for g in RACE_GROUPS)
        assert races == published.students[cds]


def test_published_graduate_counts_are_kept(
    statewide: Sample, published: Published
) -> None:
    kept = {cds: statewide.recount.graduates[cds] for cds in published.graduates}

    assert kept == published.graduates
    assert len(published.students) - len(published.graduates) == 287
    assert statewide.stats.drawn_graduate_counts == 287


def test_suppressed_graduate_counts_are_drawn_near_the_state_rate(
    statewide: Sample, published: Published
) -> None:
    suppressed = set(published.students) - set(published.graduates)
    students = sum(published.students[cds] for cds in suppressed)
    graduates = sum(statewide.recount.graduates[cds] for cds in suppressed)

    assert 0.75 < graduates / students < 0.95


def test_los_angeles_unified_schools_that_are_not_charters_have_31114(
    statewide: Sample, published: Published
) -> None:
    lausd = sum(
        count
        for cds, count in statewide.recount.students.items()
        if cds.startswith("1964733") and not published.charter[cds]
    )

    assert lausd == 31_114


def test_the_file_is_utf8_csv_with_the_layout_header_and_lf_endings(
    statewide: Sample,
) -> None:
    data = statewide.path.read_bytes()

    assert statewide.recount.header == list(CCI_2017.columns)
    assert data.decode("utf-8").count("\n") == 487_017 + 1
    assert b"\r" not in data
    assert "ñ".encode() in data  # names beyond ASCII come out as UTF-8


def test_every_value_fits_its_field(statewide: Sample) -> None:
    assert statewide.recount.bad_values == Counter()


def test_ssids_are_distinct_ten_digit_numbers(statewide: Sample) -> None:
    assert statewide.recount.duplicate_ssids == 0
    assert len(statewide.recount.ssids) == 487_017
    assert not any(ssid.startswith("0") for ssid in statewide.recount.ssids)


def test_about_two_in_five_students_are_prepared(statewide: Sample) -> None:
    levels = statewide.recount.levels
    prepared = levels["Prepared"] / sum(levels.values())

    assert 0.40 <= prepared <= 0.45
    assert levels["Approaching Prepared"] > 0


def test_students_without_a_diploma_rarely_meet_a_measure(
    statewide: Sample,
) -> None:
    nongraduates = 487_017 - statewide.stats.graduates

    assert statewide.recount.nongraduates_meeting_a_measure < 0.1 * nongraduates


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    grad = _small_graduation_file(tmp_path)

    first = _sample_text(grad, seed=7)
    second = _sample_text(grad, seed=7)

    assert hashlib.sha256(first.encode()).digest() == (
        hashlib.sha256(second.encode()).digest()
    )


def test_another_seed_gives_other_names_and_ssids(tmp_path: Path) -> None:
    grad = _small_graduation_file(tmp_path)

    first = list(csv.DictReader(io.StringIO(_sample_text(grad, seed=7))))
    second = list(csv.DictReader(io.StringIO(_sample_text(grad, seed=8))))

    assert len(first) == len(second)
    assert not {row["ssid"] for row in first} & {row["ssid"] for row in second}
    names = [(row["first_name"], row["last_name"]) for row in first]
    assert names != [(row["first_name"], row["last_name"]) for row in second]


@pytest.mark.parametrize(
    ("year", "layout_name", "has_sbac", "has_pre_apprenticeship"),
    [
        (2019, "cci-2017", True, False),
        (2021, "cci-2021", False, False),
        (2023, "cci-2023", True, True),
    ],
)
def test_each_year_writes_its_layout(
    tmp_path: Path,
    year: int,
    layout_name: str,
    has_sbac: bool,
    has_pre_apprenticeship: bool,
) -> None:
    layout = layout_for("cci", year)
    grad = _small_graduation_file(tmp_path)
    path = tmp_path / "sample.csv"
    path.write_text(_sample_text(grad, seed=1, year=year), encoding="utf-8")

    recount = _recount(path, layout)

    assert layout.name == layout_name
    assert recount.header == list(layout.columns)
    assert ("sbac_ela_level" in recount.header) is has_sbac
    assert ("pre_apprenticeship" in recount.header) is has_pre_apprenticeship
    assert recount.bad_values == Counter()


def test_birth_dates_fit_a_senior_of_the_cohort_year(tmp_path: Path) -> None:
    grad = _small_graduation_file(tmp_path)
    rows = csv.DictReader(io.StringIO(_sample_text(grad, seed=3, year=2019)))

    births = [date.fromisoformat(row["birth_date"]) for row in rows]

    assert min(births) >= date(1999, 9, 2)
    assert max(births) <= date(2002, 9, 1)
    on_time = [day for day in births if date(2000, 9, 2) <= day <= date(2001, 9, 1)]
    assert len(on_time) > 0.85 * len(births)


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    grad = _small_graduation_file(tmp_path)
    calls: list[tuple[int, int]] = []

    stats = write_cci_sample(
        grad,
        io.StringIO(),
        seed=1,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert len(calls) == stats.schools
    assert calls[-1] == (stats.students, stats.students)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_school_cohorts_reads_every_school(published: Published) -> None:
    cohorts = school_cohorts(GRADUATION_2019)

    assert len(cohorts) == 2_524
    assert {cds: c.students for cds, c in cohorts.items()} == published.students
    groups = {cds: cohort.groups for cds, cohort in cohorts.items() if cohort.groups}
    assert groups == published.groups


@pytest.mark.parametrize(
    ("problem", "column", "value", "field"),
    [
        ("a cohort size that is not a number", "currdenom", "12.5", "currdenom"),
        ("an empty cohort size", "currdenom", "", "currdenom"),
        ("more graduates than students", "currnumer", "99999", "currnumer"),
        ("a short CDS code", "cds", "0161176", "cds"),
    ],
)
def test_a_bad_graduation_row_is_reported_with_its_line_and_field(
    tmp_path: Path, problem: str, column: str, value: str, field: str
) -> None:
    header, rows = _graduation_rows()
    target = next(i for i, row in enumerate(rows) if row[1] == "S")
    rows[target][header.index(column)] = value
    path = _write_tab(tmp_path / "grad.txt", [header, *rows[: target + 1]])

    with pytest.raises(GraduationFileError) as caught:
        write_cci_sample(path, io.StringIO(), seed=1)

    assert isinstance(caught.value, LoadError)
    assert (caught.value.line, caught.value.field) == (target + 2, field), problem


def test_a_school_without_an_all_row_is_refused(tmp_path: Path) -> None:
    header, rows = _graduation_rows()
    school = [row for row in rows if row[1] == "S"][:3]
    kept = [row for row in school if row[header.index("studentgroup")] != "ALL"]
    path = _write_tab(tmp_path / "grad.txt", [header, *kept])

    with pytest.raises(GraduationFileError) as caught:
        school_cohorts(path)

    assert (caught.value.line, caught.value.field) == (2, "studentgroup")
    assert kept[0][0] in caught.value.message


# Helpers ---------------------------------------------------------------------


def _recount(path: Path, layout: Layout) -> Recount:
    kinds = {f.name: f for f in layout.fields}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        recount = Recount(header=next(reader))
        columns = recount.header
        for values in reader:
            row = dict(zip(columns, values, strict=True))
            cds = row["school_cds"]
            recount.students[cds] += 1
            recount.graduates[cds] += row["graduated"] == "Y"
            recount.groups[cds].update(filter(None, row["student_groups"].split(";")))
            if row["ssid"] in recount.ssids:
                recount.duplicate_ssids += 1
            recount.ssids.add(row["ssid"])
            for column, value in row.items():
                if not _fits(kinds[column].kind, value, kinds[column].choices):
                    recount.bad_values[column] += 1
            level = _cci_level(row)
            recount.levels[level] += 1
            if row["graduated"] != "Y" and _meets_a_measure(row):
                recount.nongraduates_meeting_a_measure += 1
    return recount


_PATTERNS = {
    Kind.SSID: re.compile(r"[1-9]\d{9}"),
    Kind.DATE: re.compile(r"\d{4}-\d{2}-\d{2}"),
    Kind.GENDER: re.compile(r"[FMX]"),
    Kind.CDS: re.compile(r"\d{14}"),
    Kind.FLAG: re.compile(r"[YN]"),
    Kind.COUNT: re.compile(r"\d{1,2}"),
    Kind.LEVEL: re.compile(r"[1-4]?"),
}


def _fits(kind: Kind, value: str, choices: tuple[str, ...]) -> bool:
    if kind is Kind.NAME:
        return 1 <= len(value) <= 60 and value.isprintable()
    if kind is Kind.GROUPS:
        codes = value.split(";") if value else []
        races = [code for code in codes if code in RACE_GROUPS]
        return set(codes) <= set(STUDENT_GROUPS) and len(races) <= 1
    if kind is Kind.CHOICE:
        return value in choices
    return _PATTERNS[kind].fullmatch(value) is not None


def _cci_level(row: dict[str, str]) -> str:
    """The CCI level by the state rules (the README's table), this row's fields."""
    if row["graduated"] != "Y":
        return "Not Prepared"

    ela = int(row.get("sbac_ela_level") or 0)
    maths = int(row.get("sbac_math_level") or 0)
    sbac_3_2 = (ela >= 3 and maths >= 2) or (ela >= 2 and maths >= 3)
    cte = row["cte_pathway"] == "Y"
    ag = row["ag_complete"] == "Y"
    college = int(row["college_credit_semesters"])
    ap = int(row["ap_exams_passed"])
    ib = int(row["ib_exams_passed"])
    military = int(row["military_science_years"])
    apprenticeship = row.get("pre_apprenticeship", "NONE")

    prepared = (
        (cte and (sbac_3_2 or college >= 1))
        or (ela >= 3 and maths >= 3)
        or college >= 2
        or ap >= 2
        or ib >= 2
        or (ag and (cte or sbac_3_2 or college >= 1 or ap >= 1 or ib >= 1))
        or (row["seal_of_biliteracy"] == "Y" and ela >= 3)
        or (military >= 2 and sbac_3_2)
        or apprenticeship == "REGISTERED"
    )
    if prepared:
        return "Prepared"
    approaching = (
        cte
        or (ela >= 2 and maths >= 2)
        or college >= 1
        or ag
        or military >= 2
        or apprenticeship == "NONREGISTERED"
    )
    return "Approaching Prepared" if approaching else "Not Prepared"


def _meets_a_measure(row: dict[str, str]) -> bool:
    return (
        row["ag_complete"] == "Y"
        or row["cte_pathway"] == "Y"
        or int(row["ap_exams_passed"]) > 0
        or int(row["ib_exams_passed"]) > 0
        or int(row["college_credit_semesters"]) > 0
    )


def _graduation_rows() -> tuple[list[str], list[list[str]]]:
    with GRADUATION_2019.open(newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle, delimiter="\t")
    return header, rows


def _small_graduation_file(tmp_path: Path) -> Path:
    """The state rows and the first 60 schools' rows of the 2019 file."""
    header, rows = _graduation_rows()
    schools = list(dict.fromkeys(row[0] for row in rows if row[1] == "S"))[:60]
    wanted = set(schools)
    kept = [row for row in rows if row[1] == "X" or row[0] in wanted]
    return _write_tab(tmp_path / "grad-small.txt", [header, *kept])


def _sample_text(grad: Path, *, seed: int, year: int = 2019) -> str:
    out = io.StringIO(newline="")
    write_cci_sample(grad, out, seed=seed, year=year)
    return out.getvalue()


def _write_tab(path: Path, rows: list[list[str]]) -> Path:
    text = "".join("\t".join(row) + "\r\n" for row in rows)
    path.write_text(text, encoding="utf-8", newline="")
    return path
