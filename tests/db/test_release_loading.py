"""Loading a release file: malformed files are rejected with line and field,
and nothing of them is kept."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import asyncpg
import pytest

from db.errors import LoadError
from db.layouts import layout_for
from db.releases import ReleaseError, create_release, load_release_file

LAYOUT = layout_for("cci", 2019)
SFUSD_SCHOOL = "38684780102103"  # another district's school: another report


def _row(**changes: str) -> list[str]:
    row = {
        "ssid": "1000000001",
        "last_name": "Rivera",
        "first_name": "Ana",
        "birth_date": "2001-03-04",
        "gender": "F",
        "school_cds": "19647331932334",  # a Los Angeles Unified high school
        "student_groups": "HI;SED",
        "graduated": "Y",
        "ag_complete": "Y",
        "cte_pathway": "N",
        "ap_exams_passed": "2",
        "ib_exams_passed": "0",
        "college_credit_semesters": "0",
        "sbac_ela_level": "3",
        "sbac_math_level": "",
        "seal_of_biliteracy": "N",
        "military_science_years": "0",
    }
    row.update(changes)
    return [row[c] for c in LAYOUT.columns]


def _write(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header or list(LAYOUT.columns))
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _good_rows(count: int = 3) -> list[list[str]]:
    return [_row(ssid=f"10000000{n:02d}") for n in range(1, count + 1)]


@pytest.fixture
async def release(owner: asyncpg.Connection, loaded: object) -> int:
    return await create_release(owner, report_type="cci", year=2019, label="test")


async def _nothing_kept(owner: asyncpg.Connection, release: int) -> None:
    assert (
        await owner.fetchval(
            "select count(*) from reports where release_id = $1", release
        )
        == 0
    )
    assert (
        await owner.fetchval("select status from releases where id = $1", release)
        == "draft"
    )


@pytest.mark.parametrize(
    ("case", "rows", "line", "field", "words"),
    [
        ("bad SSID", [*_good_rows(), _row(ssid="12345")], 5, "ssid", "10 digits"),
        ("SSID with letters", [_row(ssid="12345678AB")], 2, "ssid", "10 digits"),
        (
            "impossible date",
            [*_good_rows(2), _row(ssid="1000000099", birth_date="2001-02-30")],
            4,
            "birth_date",
            "real calendar date",
        ),
        (
            "date in another form",
            [_row(birth_date="03/04/2001")],
            2,
            "birth_date",
            "YYYY-MM-DD",
        ),
        (
            "unknown school",
            [*_good_rows(), _row(ssid="1000000099", school_cds="19647339999999")],
            5,
            "school_cds",
            "not in the school directory",
        ),
        (
            "an LEA code as school",
            [_row(school_cds="19647330000000")],
            2,
            "school_cds",
            "not a school",
        ),
        ("bad flag", [_row(graduated="yes")], 2, "graduated", "Y or N"),
        ("bad level", [_row(sbac_ela_level="5")], 2, "sbac_ela_level", "1-4"),
        (
            "unknown student group",
            [_row(student_groups="HI;XYZ")],
            2,
            "student_groups",
            "codes",
        ),
        (
            "duplicate SSID",
            [*_good_rows(), _row(ssid="1000000002")],
            5,
            "ssid",
            "earlier line",
        ),
        (
            "SSID in two reports",
            [*_good_rows(), _row(ssid="1000000001", school_cds=SFUSD_SCHOOL)],
            5,
            "ssid",
            "earlier line",
        ),
        (
            "school code with letters",
            [*_good_rows(), _row(ssid="1000000099", school_cds="1964733193233A")],
            5,
            "school_cds",
            "14 digits",
        ),
        (
            "bad line after a bad school",
            [_row(school_cds="19647339999999"), _row(ssid="1000000099", gender="Q")],
            3,
            "gender",
            "F, M or X",
        ),
        ("missing name", [_row(last_name="")], 2, "last_name", "1 to 60"),
    ],
)
async def test_a_bad_value_names_its_line_and_field_and_keeps_nothing(
    owner: asyncpg.Connection,
    release: int,
    tmp_path: Path,
    case: str,
    rows: list[list[str]],
    line: int,
    field: str,
    words: str,
) -> None:
    path = _write(tmp_path / "bad.csv", rows)

    with pytest.raises(LoadError) as caught:
        await load_release_file(owner, release, path)

    assert (caught.value.line, caught.value.field) == (line, field), case
    assert words in str(caught.value)
    assert "Rivera" not in str(caught.value) and "2001-" not in str(caught.value)
    await _nothing_kept(owner, release)


async def test_a_row_with_too_many_columns_is_named(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "wide.csv", [*_good_rows(), [*_row(ssid="1000000099"), "extra"]]
    )

    with pytest.raises(LoadError, match="more columns") as caught:
        await load_release_file(owner, release, path)

    assert caught.value.line == 5
    await _nothing_kept(owner, release)


async def test_a_row_with_too_few_columns_is_named(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    path = _write(tmp_path / "narrow.csv", [*_good_rows(), _row()[:5]])

    with pytest.raises(LoadError, match="fewer columns") as caught:
        await load_release_file(owner, release, path)

    assert caught.value.line == 5
    await _nothing_kept(owner, release)


async def test_a_file_that_is_not_utf8_is_refused_with_its_line(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    path = _write(tmp_path / "latin1.csv", _good_rows())
    with path.open("ab") as handle:
        handle.write(
            ",".join(_row(ssid="1000000099", last_name="Pe\xf1a")).encode("latin-1")
            + b"\n"
        )

    with pytest.raises(LoadError, match="UTF-8") as caught:
        await load_release_file(owner, release, path)

    assert caught.value.line == 5
    await _nothing_kept(owner, release)


async def test_a_nul_byte_is_named_as_such_with_its_line(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    path = _write(tmp_path / "nul.csv", _good_rows())
    with path.open("ab") as handle:
        handle.write(
            ",".join(_row(ssid="1000000099", last_name="Pe\x00a")).encode() + b"\n"
        )

    with pytest.raises(LoadError, match="NUL byte") as caught:
        await load_release_file(owner, release, path)

    assert caught.value.line == 5
    assert "UTF-8" not in str(caught.value)
    await _nothing_kept(owner, release)


async def test_a_file_that_cannot_be_opened_is_named_without_a_line(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    with pytest.raises(LoadError) as caught:
        await load_release_file(owner, release, tmp_path / "missing.csv")

    assert (
        str(caught.value)
        == f"{tmp_path / 'missing.csv'}: cannot be read: No such file or directory"
    )
    await _nothing_kept(owner, release)


async def test_a_header_of_another_layout_is_refused_on_line_one(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    header = [c for c in LAYOUT.columns if not c.startswith("sbac")]
    path = _write(tmp_path / "2021.csv", [], header=header)

    with pytest.raises(LoadError) as caught:
        await load_release_file(owner, release, path)

    assert caught.value.line == 1
    assert caught.value.field == "sbac_ela_level"
    assert "cci-2017" in str(caught.value)


async def test_a_good_file_splits_into_lea_and_charter_reports(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    charter = await owner.fetchval(
        "select cds_code from organizations where kind = 'charter' and lea_cds = '19647330000000' limit 1"
    )
    rows = [*_good_rows(3), _row(ssid="1000000050", school_cds=charter)]
    path = _write(tmp_path / "good.csv", rows)

    summary = await load_release_file(owner, release, path)

    assert (summary.rows, summary.reports) == (4, 2)
    counts = dict(
        await owner.fetch(
            "select org_cds, student_count from reports where release_id = $1", release
        )
    )
    assert counts == {"19647330000000": 3, charter: 1}
    with pytest.raises(ReleaseError, match="loaded once"):
        await load_release_file(owner, release, path)


async def test_a_school_whose_lea_is_not_in_the_directory_is_named(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "orphan.csv",
        [*_good_rows(), _row(ssid="1000000099", school_cds="99999999999999")],
    )
    outer = owner.transaction()
    await outer.start()
    try:
        # A school of an LEA the directory does not have (rolled back).
        await owner.execute(
            "insert into organizations (cds_code, kind, name, lea_cds, status, source) "
            "values ('99999999999999', 'school', 'Nowhere High', '99999990000000', 'Active', 'directory')"
        )
        with pytest.raises(LoadError, match="LEA 99999990000000") as caught:
            await load_release_file(owner, release, path)
        assert caught.value.field == "school_cds"
        await _nothing_kept(owner, release)
    finally:
        await outer.rollback()


async def test_many_bad_lines_are_counted_and_the_first_hundred_kept(
    owner: asyncpg.Connection, release: int, tmp_path: Path
) -> None:
    rows = [
        _row(ssid=f"1{n:09d}", graduated="maybe" if n % 2 else "Y")
        for n in range(1, 301)
    ]
    path = _write(tmp_path / "many.csv", rows)

    with pytest.raises(LoadError) as caught:
        await load_release_file(owner, release, path)

    assert caught.value.bad_lines == 150
    assert len(caught.value.rejections) == 100
    assert [r.line for r in caught.value.rejections[:2]] == [2, 4]
    assert {r.field for r in caught.value.rejections} == {"graduated"}
    await _nothing_kept(owner, release)
