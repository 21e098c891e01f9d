"""`make bench`: every benchmark, one table of product figures beside baselines."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from bench import audit as audit_trail
from bench import downloads, main_job, releases, scaling
from bench.common import (
    BenchContext,
    Report,
    Service,
    bench_database,
    load_statewide,
    postgres_server,
    sample_file,
)

# Each step is an async function of the context; areas add theirs here.
STEPS = [main_job.bench_load, main_job.bench_page, downloads.bench_downloads]
STEPS += [scaling.bench_audit_writes, scaling.bench_verify, scaling.bench_replicas]
STEPS += [releases.bench_ltel_load, releases.bench_cci_level_page]
STEPS += [audit_trail.bench_writes, audit_trail.bench_disclosures]


async def run_all(server_dsn: str, only: list[str]) -> Report:
    """Runs every step, or those whose name contains one of `only`."""
    report = Report()
    steps = [
        step
        for step in STEPS
        if not only
        or any(word in f"{step.__module__}.{step.__name__}" for word in only)
    ]
    async with bench_database(server_dsn) as db:
        owner = await asyncpg.connect(db.owner_dsn)
        try:
            release = await load_statewide(owner)
        finally:
            await owner.close()
        with (
            tempfile.TemporaryDirectory(prefix="soars-bench-") as folder,
            Service(db, Path(folder)) as service,
        ):
            ctx = BenchContext(db=db, service=service, release=release, report=report)
            for step in steps:
                print(f"- {step.__module__}.{step.__name__}", flush=True)
                await step(ctx)
    return report


def main() -> None:
    only = sys.argv[1:]  # e.g. `python -m bench bench_page audit.bench_writes`
    started = time.monotonic()
    print("preparing the statewide sample ...", flush=True)
    sample_file()
    with postgres_server() as server_dsn:
        report = asyncio.run(run_all(server_dsn, only))
    report.print()
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
