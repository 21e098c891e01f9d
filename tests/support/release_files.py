"""Small hand-made release files, in any layout, for tests that need to know
exactly what each student's record says."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from db.layouts import Layout

# A graduate of Ronald E. McNair High (Lodi Unified) who met nothing; tests
# change what they need.
CCI_DEFAULTS = {
    "ssid": "2000000001",
    "last_name": "Okafor",
    "first_name": "Ada",
    "birth_date": "2005-03-04",
    "gender": "F",
    "school_cds": "39685850108225",
    "student_groups": "",
    "graduated": "Y",
    "ag_complete": "N",
    "cte_pathway": "N",
    "ap_exams_passed": "0",
    "ib_exams_passed": "0",
    "college_credit_semesters": "0",
    "sbac_ela_level": "",
    "sbac_math_level": "",
    "seal_of_biliteracy": "N",
    "military_science_years": "0",
    "pre_apprenticeship": "NONE",
}


def write_release_file(
    path: Path,
    layout: Layout,
    rows: Iterable[Mapping[str, str]],
    defaults: Mapping[str, str] = CCI_DEFAULTS,
) -> Path:
    """A CSV file of `layout`: each row is `defaults` updated by the row."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(layout.columns)
        for changes in rows:
            record = {**defaults, **changes}
            writer.writerow([record[column] for column in layout.columns])
    return path
