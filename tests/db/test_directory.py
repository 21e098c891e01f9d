"""Organizations read from the CDE directory and from Dashboard files."""

from __future__ import annotations

import csv
import os
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest

from db.directory import (
    DirectoryError,
    Organization,
    read_dashboard_organizations,
    read_directory,
)
from db.errors import LoadError

DATA = Path(
    os.environ.get("SOARS_CDE_DATA")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cde"
)
DIRECTORY_2018 = DATA / "pubschls_2018-06-26.txt"
CURRENT_SAMPLE = DATA / "pubschls_current_format_sample.txt"
GRADUATION_2019 = DATA / "graddownload2019.txt"
ELPI_2019 = DATA / "elpidownload2019.txt"


@pytest.fixture(scope="module")
def directory() -> dict[str, Organization]:
    return {org.cds_code: org for org in read_directory(DIRECTORY_2018)}


def test_the_2018_directory_yields_every_record(
    directory: dict[str, Organization],
) -> None:
    assert len(directory) == 17_892
    assert all(org.source == "directory" for org in directory.values())


def test_the_2018_directory_has_1380_district_records(
    directory: dict[str, Organization],
) -> None:
    districts = [org for org in directory.values() if org.kind in ("lea", "coe")]

    assert len(districts) == 1_380
    assert all(org.cds_code.endswith("0000000") for org in districts)
    assert all(org.lea_cds == org.cds_code for org in districts)


def test_los_angeles_unified_is_an_lea(directory: dict[str, Organization]) -> None:
    lausd = directory["19647330000000"]

    assert lausd.kind == "lea"
    assert lausd.name == "Los Angeles Unified"
    assert lausd.county == "Los Angeles"
    assert lausd.status == "Active"
    assert lausd.doc_type == "Unified School District"
    assert lausd.charter is False
    assert lausd.funding_type is None


def test_a_county_office_of_education_is_a_coe(
    directory: dict[str, Organization],
) -> None:
    los_angeles_coe = directory["19101990000000"]
    kinds = Counter(org.kind for org in directory.values())

    assert los_angeles_coe.kind == "coe"
    assert los_angeles_coe.name == "Los Angeles County Office of Education"
    assert kinds["coe"] == 60  # DOC 00 district records, closed ones included


def test_a_directly_funded_charter_keeps_its_funding_type(
    directory: dict[str, Organization],
) -> None:
    envision = directory["01100170112607"]

    assert envision.kind == "charter"
    assert envision.charter is True
    assert envision.funding_type == "Directly funded"
    assert envision.name == "Envision Academy for Arts & Technology"
    assert envision.lea_cds == "01100170000000"
    assert envision.grades_served == "9-12"


def test_schools_take_their_own_name_and_their_lea_code(
    directory: dict[str, Organization],
) -> None:
    school = directory["19647330117846"]

    assert school.name == "Para Los Niños Middle"  # UTF-8 in this file
    assert school.lea_cds == "19647330000000"
    assert directory["33671730119297"].name == '"Virtual" Pre'  # quoted in the file


def test_the_current_46_column_format_parses() -> None:
    orgs = {org.cds_code: org for org in read_directory(CURRENT_SAMPLE)}

    assert len(orgs) == 9
    assert orgs["01100170000000"].kind == "coe"
    assert orgs["01100170000000"].grades_served is None  # "No Data"
    assert orgs["01100170109835"].status == "Closed"
    assert orgs["01100170109835"].funding_type is None  # "No Data"
    assert orgs["01100170112607"].funding_type == "Directly funded"
    assert orgs["01100170136226"].funding_type == "Locally funded"
    assert orgs["01100170130401"].kind == "school"
    assert orgs["01100170130401"].soc_type == "Juvenile Court Schools"
    assert orgs["30665973031853"].lea_cds == "30665970000000"


def test_an_extract_without_names_is_refused_at_the_header() -> None:
    extract = DATA / "pubschls_2021-10-05_8col_extract.txt"

    with pytest.raises(DirectoryError) as caught:
        list(read_directory(extract))

    assert caught.value.line == 1
    assert "District" in caught.value.field


# Malformed files: each case changes one cell (or the header) of real rows.

DIRECTORY_CASES = [
    # (what is wrong, column, new value, expected line, expected field)
    ("a 13-digit CDS code", "CDSCode", "0110017000000", 3, "CDSCode"),
    ("letters in the CDS code", "CDSCode", "0110017010983X", 3, "CDSCode"),
    ("an unknown status", "StatusType", "Open", 3, "StatusType"),
    ("an empty status", "StatusType", "", 3, "StatusType"),
    ("an unknown funding type", "FundingType", "Self funded", 3, "FundingType"),
    ("a charter flag that is not Y or N", "Charter", "Yes", 3, "Charter"),
    ("no school name", "School", "", 3, "School"),
]


@pytest.mark.parametrize(
    ("problem", "column", "value", "line", "field"),
    DIRECTORY_CASES,
    ids=[case[0] for case in DIRECTORY_CASES],
)
def test_a_bad_cell_is_reported_with_its_line_and_field(
    tmp_path: Path, problem: str, column: str, value: str, line: int, field: str
) -> None:
    header, rows = _directory_head(4)
    rows[1][header.index(column)] = value
    path = _write_tab(tmp_path / "pubschls.txt", [header, *rows])

    with pytest.raises(DirectoryError) as caught:
        list(read_directory(path))

    assert (caught.value.line, caught.value.field) == (line, field), problem
    assert str(caught.value).startswith(f"{path}, line {line}, field {field}: ")


def test_a_missing_header_column_is_reported_on_line_1(tmp_path: Path) -> None:
    header, rows = _directory_head(2)
    status = header.index("StatusType")
    for row in [header, *rows]:
        del row[status]
    path = _write_tab(tmp_path / "pubschls.txt", [header, *rows])

    with pytest.raises(DirectoryError) as caught:
        list(read_directory(path))

    assert caught.value.line == 1
    assert caught.value.field == "StatusType"
    assert str(caught.value) == (
        f"{path}, line 1, field StatusType: required column(s) missing from the "
        "header; found 48 columns"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [(-1, "LastUpDate"), (-4, "AdmFName3"), (+1, "column 50")],
)
def test_a_row_of_the_wrong_width_is_reported(
    tmp_path: Path, change: int, field: str
) -> None:
    header, rows = _directory_head(3)
    rows[2] = rows[2][:change] if change < 0 else [*rows[2], "extra"]
    path = _write_tab(tmp_path / "pubschls.txt", [header, *rows])

    with pytest.raises(DirectoryError) as caught:
        list(read_directory(path))

    assert (caught.value.line, caught.value.field) == (4, field)
    assert "the header has 49" in caught.value.message


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(
    tmp_path: Path,
) -> None:
    header, rows = _directory_head(2)
    rows[1][header.index("StatusType")] = "Open"
    text = "\r\n".join("\t".join(row) for row in [header, rows[0]])
    text += "\r\n\r\n" + "\t".join(rows[1]) + "\r\n"
    path = tmp_path / "pubschls.txt"
    path.write_text(text, encoding="utf-8", newline="")

    with pytest.raises(DirectoryError) as caught:
        list(read_directory(path))

    assert caught.value.line == 4


def test_a_cp1252_file_is_decoded(tmp_path: Path) -> None:
    header, rows = _directory_head(2)
    rows[1][header.index("School")] = "Escuela Niño Café"
    path = _write_tab(tmp_path / "pubschls.txt", [header, *rows], "cp1252")

    orgs = list(read_directory(path))

    assert orgs[1].name == "Escuela Niño Café"


def test_bytes_that_are_neither_utf8_nor_cp1252_raise_a_load_error(
    tmp_path: Path,
) -> None:
    header, rows = _directory_head(2)
    rows[1][header.index("School")] = "Bad \x00 here"
    path = _write_tab(tmp_path / "pubschls.txt", [header, *rows])
    # 0x81 is undefined in cp1252 and invalid on its own in UTF-8.
    path.write_bytes(path.read_bytes().replace(b"\x00", b"\x81"))

    with pytest.raises(LoadError) as caught:
        list(read_directory(path))

    assert isinstance(caught.value, DirectoryError)
    assert (caught.value.line, caught.value.field) == (3, "School")
    assert "0x81" in caught.value.message


# Dashboard files: organizations the directory snapshot does not have yet.


def test_the_graduation_file_gives_each_lea_and_school_once() -> None:
    orgs = list(read_dashboard_organizations(GRADUATION_2019))
    kinds = Counter(org.kind for org in orgs)

    assert len(orgs) == len({org.cds_code for org in orgs}) == 2_994
    assert kinds["school"] + kinds["charter"] == 2_524
    assert kinds == {"school": 1_963, "charter": 561, "lea": 417, "coe": 53}
    assert {org.source for org in orgs} == {"dashboard"}
    assert {org.status for org in orgs} == {"Active"}
    assert {org.funding_type for org in orgs} == {None}


def test_the_dashboard_fills_57_schools_missing_from_the_2018_directory(
    directory: dict[str, Organization],
) -> None:
    dashboard = list(read_dashboard_organizations(GRADUATION_2019))
    missing = {
        org.cds_code
        for org in dashboard
        if org.cds_code not in directory and org.kind in ("school", "charter")
    }
    with GRADUATION_2019.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        students = sum(
            int(row["currdenom"])
            for row in rows
            if row["cds"] in missing and row["studentgroup"] == "ALL"
        )

    assert len(missing) == 57
    assert students == 4_738


def test_a_dashboard_school_keeps_its_names_and_flags() -> None:
    orgs = {org.cds_code: org for org in read_dashboard_organizations(ELPI_2019)}

    charter = orgs["19647336120489"]  # the ELPI file is cp1252
    assert charter.name == "Para Los Niños Charter"
    assert charter.kind == "charter"
    assert charter.charter is True
    assert charter.lea_cds == "19647330000000"
    assert charter.county == "Los Angeles"
    assert orgs["19647330000000"].kind == "lea"
    assert orgs["19101990000000"].kind == "coe"


def test_a_dashboard_lea_row_with_a_school_code_is_refused(tmp_path: Path) -> None:
    with GRADUATION_2019.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, state = rows[0], rows[1]
    school = next(row for row in rows if row[1] == "S")
    school[1] = "D"
    path = _write_tab(tmp_path / "graddownload.txt", [header, state, school])

    with pytest.raises(DirectoryError) as caught:
        list(read_dashboard_organizations(path))

    assert (caught.value.line, caught.value.field) == (3, "cds")
    assert school[0] in caught.value.message


def _directory_head(count: int) -> tuple[list[str], list[list[str]]]:
    """The 2018 directory's header and its first `count` rows."""
    with DIRECTORY_2018.open(newline="", encoding="utf-8") as handle:
        header, *rows = islice(csv.reader(handle, delimiter="\t"), count + 1)
    return header, rows


def _write_tab(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    text = "".join("\t".join(row) + "\r\n" for row in rows)
    path.write_text(text, encoding=encoding, newline="")
    return path
