"""The committed SDL is the schema the code builds."""

from pathlib import Path

from schema import build_schema

SDL = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    built = build_schema().as_str().strip()

    assert SDL.read_text(encoding="utf-8").strip() == built, (
        "schema.graphql is out of date: run `soars schema print > schema.graphql`"
    )
