"""The `soars` command line.

Commands that change data connect as the owner role (the migration login);
the service itself connects as the runtime role.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

from soars.settings import Settings, SettingsError, load_settings

EPILOG_EXAMPLES = """\
examples:
  soars db migrate
  soars orgs load ../shared/data/cde/pubschls_2018-06-26.txt \\
                  ../shared/data/cde/graddownload2019.txt
  soars sample cci --out cci-2019.csv
  soars sample ltel --out ltel-2019.csv
  soars releases load --type cci --year 2019 cci-2019.csv
  soars releases publish 1 --until 2027-06-30
  soars roles grant --subject alice --org 19647330000000 --role accountability_coordinator
  soars dev token --subject alice
  soars serve
"""


def _print(message: str) -> None:
    print(message, flush=True)


def _whole_number(text: str) -> int:
    """An argparse type: ASCII digits only (int() also reads other scripts'
    digits), and small enough for a database id."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def _release_number(text: str) -> int:
    """--release: the number `soars releases list` shows, or the id the API
    gives (createRelease's `id`)."""
    if text.isascii() and text.isdigit():
        return _whole_number(text)
    from resolvers.cursors import decode_id
    from resolvers.errors import ApiError

    try:
        return decode_id("Release", text)
    except ApiError:
        raise argparse.ArgumentTypeError(
            f"expected a release number or a release's id, got {text!r}"
        ) from None


class CommandError(Exception):
    """A command failed for a reason the user can fix; printed without a traceback."""


async def _with_owner(
    settings: Settings,
    work: Callable[[asyncpg.Connection], Awaitable[Any]],
    *,
    create: bool = False,
) -> Any:
    from db.bootstrap import open_database

    async with open_database(settings, migrate_now=True, create=create) as database:
        assert database.owner_dsn is not None  # migrate_now refuses runtime-only
        conn = await asyncpg.connect(
            database.owner_dsn, server_settings={"timezone": settings.time_zone}
        )
        try:
            return await work(conn)
        finally:
            await conn.close()


# -- db ---------------------------------------------------------------------


def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from db.bootstrap import open_database

    async def run() -> None:
        async with open_database(settings, migrate_now=True):
            pass

    asyncio.run(run())
    _print("migrations are current")


# -- orgs -------------------------------------------------------------------


def cmd_orgs_load(settings: Settings, args: argparse.Namespace) -> None:
    from audit.tags import Action, Outcome
    from audit.writer import SYSTEM, record
    from db.organizations import load_organizations

    async def work(conn: asyncpg.Connection) -> None:
        for path in args.paths:
            summary = await load_organizations(conn, Path(path))
            await record(
                conn,
                action=Action.ORGS_LOADED,
                outcome=Outcome.GRANTED,
                actor=SYSTEM,
                detail={
                    "file": Path(path).name,
                    "read": summary.read,
                    "added": summary.inserted,
                    "updated": summary.updated,
                },
            )
            _print(
                f"{path}: {summary.read} records read, {summary.inserted} added, "
                f"{summary.updated} updated, {summary.kept} kept from the directory"
            )

    asyncio.run(_with_owner(settings, work))


# -- sample -----------------------------------------------------------------


def _grad_file(settings: Settings, given: str | None) -> Path:
    path = Path(given) if given else settings.cde_data / "graddownload2019.txt"
    if not path.exists():
        raise CommandError(
            f"{path} not found: pass --grad PATH or set SOARS_CDE_DATA to the folder "
            "holding graddownload2019.txt"
        )
    return path


def cmd_sample_cci(settings: Settings, args: argparse.Namespace) -> None:
    from db.samples import write_cci_sample
    from soars.progress import Progress

    grad = _grad_file(settings, args.grad)
    out = Path(args.out)
    with (
        out.open("w", encoding="utf-8", newline="") as handle,
        Progress(f"writing {out.name}", unit="students") as progress,
    ):
        stats = write_cci_sample(
            grad, handle, seed=args.seed, year=args.year, progress=progress.counted
        )
    _print(
        f"{out}: {stats.students} students in {stats.schools} schools (seed {args.seed})"
    )


def _cde_file(settings: Settings, given: str | None, name: str, option: str) -> Path:
    path = Path(given) if given else settings.cde_data / name
    if not path.exists():
        raise CommandError(
            f"{path} not found: pass {option} PATH or set SOARS_CDE_DATA to the "
            f"folder holding {name}"
        )
    return path


def cmd_sample_ltel(settings: Settings, args: argparse.Namespace) -> None:
    from db.samples import write_ltel_sample
    from soars.progress import Progress

    elpi = _cde_file(settings, args.elpi, "elpidownload2019.txt", "--elpi")
    directory = _cde_file(
        settings, args.directory, "pubschls_2018-06-26.txt", "--directory"
    )
    out = Path(args.out)
    with (
        out.open("w", encoding="utf-8", newline="") as handle,
        Progress(f"writing {out.name}", unit="learners") as progress,
    ):
        stats = write_ltel_sample(
            elpi,
            directory,
            handle,
            seed=args.seed,
            year=args.year,
            progress=progress.counted,
        )
    _print(
        f"{out}: {stats.ltel} LTEL and {stats.at_risk} at-risk students of "
        f"{stats.english_learners} English learners in {stats.schools} schools "
        f"(seed {args.seed}); load {elpi.name} with `soars orgs load` first, for "
        "schools newer than the directory"
    )


# -- releases ---------------------------------------------------------------


def cmd_releases_load(settings: Settings, args: argparse.Namespace) -> None:
    from audit.tags import Action, Outcome
    from audit.writer import SYSTEM, record
    from db.errors import LoadError
    from db.layouts import layout_for
    from db.releases import create_release, load_release_file
    from soars.progress import StepProgress

    path = Path(args.file)
    if args.release is None:
        try:
            layout_for(args.type, args.year)
        except ValueError as error:
            raise CommandError(f"--year {args.year}: {error}") from None

    async def work(conn: asyncpg.Connection) -> None:
        release_id = args.release
        if release_id is None:
            release_id = await create_release(
                conn, report_type=args.type, year=args.year, label=args.label
            )
            await record(
                conn,
                action=Action.RELEASE_CREATED,
                outcome=Outcome.GRANTED,
                actor=SYSTEM,
                release_id=release_id,
                detail={"report_type": args.type, "year": args.year},
            )
            _print(f"release {release_id} created ({args.type.upper()} {args.year})")
        progress = StepProgress(f"release {release_id}")
        try:
            summary = await load_release_file(conn, release_id, path, progress=progress)
        except Exception as error:
            if isinstance(error, LoadError):
                # The refusal itself is kept on the release (its load summary).
                await record(
                    conn,
                    action=Action.RELEASE_LOADED,
                    outcome=Outcome.FAILED,
                    actor=SYSTEM,
                    release_id=release_id,
                    detail={
                        "file": path.name,
                        "line": error.line,
                        "field": error.field,
                        "bad_lines": error.bad_lines,
                    },
                )
            if args.release is None:
                await conn.execute(
                    "delete from releases where id = $1 and status = 'draft'",
                    release_id,
                )
                _print(f"release {release_id} removed again: its file was refused")
            raise
        finally:
            progress.close()
        await record(
            conn,
            action=Action.RELEASE_LOADED,
            outcome=Outcome.GRANTED,
            actor=SYSTEM,
            release_id=release_id,
            student_count=summary.rows,
            detail={"file": path.name, "reports": summary.reports},
        )
        rate = summary.rows / summary.seconds if summary.seconds else 0
        _print(
            f"release {release_id}: {summary.rows} students in {summary.reports} reports "
            f"loaded in {summary.seconds:.1f} s ({rate:,.0f} rows/s)"
        )

    asyncio.run(_with_owner(settings, work))


def cmd_releases_publish(settings: Settings, args: argparse.Namespace) -> None:
    from audit.tags import Action, Outcome
    from audit.writer import SYSTEM, record
    from db.releases import publish

    until = _date(args.until, "--until")

    async def work(conn: asyncpg.Connection) -> None:
        published = await publish(conn, args.id, until)
        await record(
            conn,
            action=Action.RELEASE_PUBLISHED,
            outcome=Outcome.GRANTED,
            actor=SYSTEM,
            release_id=args.id,
            detail={"available_until": until.isoformat()},
        )
        _print(f"release {args.id} is published until {until.isoformat()}")
        if published.withdrew is not None:
            await record(
                conn,
                action=Action.RELEASE_WITHDRAWN,
                outcome=Outcome.GRANTED,
                actor=SYSTEM,
                release_id=published.withdrew,
                detail={"reason": "superseded", "superseded_by": args.id},
            )
            _print(f"release {published.withdrew}, which it corrects, is withdrawn")

    asyncio.run(_with_owner(settings, work))


def cmd_releases_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "select id, report_type, year, layout, status, available_until, rows_loaded, "
            "(select count(*) from reports r where r.release_id = releases.id) as reports "
            "from releases order by id"
        )
        for row in rows:
            _print(
                f"{row['id']:>4}  {row['report_type'].upper():<4} {row['year']}  "
                f"{row['layout']:<9} {row['status']:<9} until {row['available_until'] or '-'}"
                f"  {row['rows_loaded'] or 0} students, {row['reports']} reports"
            )

    asyncio.run(_with_owner(settings, work))


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"{option}: expected a date as YYYY-MM-DD, got {text!r}"
        ) from None


# -- roles ------------------------------------------------------------------


def _issuer(settings: Settings, given: str | None) -> str:
    if given:
        return given
    if settings.issuers:
        return settings.issuers[0].issuer
    return settings.dev_issuer


def cmd_roles_grant(settings: Settings, args: argparse.Namespace) -> None:
    from audit.tags import Action, Outcome
    from audit.writer import SYSTEM, record
    from db.roles import grant

    issuer = _issuer(settings, args.issuer)
    ends_on = _date(args.until, "--until") if args.until else None

    async def work(conn: asyncpg.Connection) -> None:
        await grant(
            conn,
            issuer=issuer,
            subject=args.subject,
            org_cds=args.org,
            role=args.role,
            granted_by="soars-cli",
            ends_on=ends_on,
        )
        await record(
            conn,
            action=Action.ROLE_GRANTED,
            outcome=Outcome.GRANTED,
            actor=SYSTEM,
            org_cds=args.org,
            detail={"issuer": issuer, "subject": args.subject, "role": args.role},
        )
        _print(f"{args.subject} is {args.role} of {args.org} (issuer {issuer})")

    asyncio.run(_with_owner(settings, work))


def cmd_roles_revoke(settings: Settings, args: argparse.Namespace) -> None:
    from audit.tags import Action, Outcome
    from audit.writer import SYSTEM, record
    from db.roles import revoke

    issuer = _issuer(settings, args.issuer)

    async def work(conn: asyncpg.Connection) -> None:
        count = await revoke(
            conn,
            issuer=issuer,
            subject=args.subject,
            org_cds=args.org,
            role=args.role,
            revoked_by="soars-cli",
        )
        if not count:
            raise CommandError(
                f"{args.subject} holds no active {args.role} at {args.org}"
            )
        await record(
            conn,
            action=Action.ROLE_REVOKED,
            outcome=Outcome.GRANTED,
            actor=SYSTEM,
            org_cds=args.org,
            detail={"issuer": issuer, "subject": args.subject, "role": args.role},
        )
        _print(f"revoked {args.role} of {args.subject} at {args.org}")

    asyncio.run(_with_owner(settings, work))


# -- audit ------------------------------------------------------------------


def _public_keys(settings: Settings, given: list[str] | None) -> list[Any]:
    from audit.keys import AuditKeyError, public_keys_for

    try:
        return public_keys_for(settings, [Path(p) for p in given or ()])
    except AuditKeyError as error:
        raise CommandError(str(error)) from None


def _report(report: Any) -> None:
    for line in report.lines():
        _print(line)
    if not report.ok:
        raise SystemExit(1)


def cmd_audit_export(settings: Settings, args: argparse.Namespace) -> None:
    from audit.verify import export_events
    from soars.progress import Progress

    async def work(conn: asyncpg.Connection) -> None:
        total = await conn.fetchval(
            "select count(*) from audit_events "
            "where $1::text is null or chain_org = $1",
            args.org,
        )
        # On standard error, beside the export on standard output.
        with Progress("exporting", total=total, unit="events") as progress:
            async for line in export_events(conn, org_cds=args.org):
                sys.stdout.write(line + "\n")
                if line.startswith('{"id":'):  # an event, not a header or checkpoint
                    progress.advance()

    asyncio.run(_with_owner(settings, work))


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> None:
    from audit.verify import verify_database
    from soars.progress import Progress

    keys = _public_keys(settings, args.public_key)

    async def work(conn: asyncpg.Connection) -> Any:
        from audit.tags import Action, Outcome
        from audit.writer import SYSTEM, record

        with Progress("verifying", unit="events") as progress:
            report = await verify_database(conn, keys, progress=progress.counted)
        # The result joins the trail it describes, so compliance officers
        # see when the trail was last verified and what was found.
        problems = [line for line in report.lines() if not line.startswith("OK")]
        await record(
            conn,
            action=Action.AUDIT_TRAIL_VERIFIED,
            outcome=Outcome.GRANTED if report.ok else Outcome.FAILED,
            actor=SYSTEM,
            detail={
                "chains": len(report.chains),
                "events": report.events,
                "checkpoints": report.checkpoints,
                "problems": problems[:20] if not report.ok else [],
            },
        )
        return report

    _report(asyncio.run(_with_owner(settings, work)))


def cmd_audit_verify_export(settings: Settings, args: argparse.Namespace) -> None:
    from audit.verify import ExportFormatError, verify_export

    keys = _public_keys(settings, args.public_key)
    try:
        report = verify_export(Path(args.file), keys)
    except OSError as error:
        raise CommandError(f"{args.file}: {error.strerror or error}") from None
    except ExportFormatError as error:
        raise CommandError(str(error)) from None
    _report(report)


def cmd_audit_checkpoint(settings: Settings, args: argparse.Namespace) -> None:
    from audit.checkpoints import make_checkpoint
    from audit.keys import AuditKeyError, signing_key_for

    try:
        key = signing_key_for(settings)
    except AuditKeyError as error:
        raise CommandError(str(error)) from None

    async def work(conn: asyncpg.Connection) -> None:
        checkpoint = await make_checkpoint(conn, key)
        if checkpoint is None:
            _print("no chain grew since the last checkpoint; nothing to sign")
            return
        chains = checkpoint.message.count("\nchain ")
        _print(
            f"checkpoint {checkpoint.number} signed with key {checkpoint.key_id}: "
            f"the heads of {chains} chains"
        )

    asyncio.run(_with_owner(settings, work))


def cmd_audit_keygen(settings: Settings, args: argparse.Namespace) -> None:
    from audit.keys import AuditKeyError, generate_signing_key, key_id, public_pem

    try:
        key = generate_signing_key(Path(args.path))
    except (AuditKeyError, OSError) as error:
        raise CommandError(str(error)) from None
    public = key.public_key()
    print(
        f"signing key {key_id(public)} written to {args.path} (mode 0600)",
        file=sys.stderr,
    )
    sys.stdout.write(public_pem(public))


def cmd_audit_public_key(settings: Settings, args: argparse.Namespace) -> None:
    from audit.keys import AuditKeyError, public_pem, signing_key_for

    try:
        public = signing_key_for(settings).public_key()
    except AuditKeyError as error:
        raise CommandError(str(error)) from None
    sys.stdout.write(public_pem(public))


# -- dev --------------------------------------------------------------------


def cmd_dev_token(settings: Settings, args: argparse.Namespace) -> None:
    from soars.app import dev_issuer_for

    if not settings.is_development:
        raise CommandError("development tokens are refused in production mode")
    issuer = dev_issuer_for(settings)
    _print(issuer.mint(args.subject, ttl=args.ttl, client=args.client, name=args.name))


def cmd_dev_setup(settings: Settings, args: argparse.Namespace) -> None:
    from soars.devdata import set_up_sample_data

    if not settings.is_development:
        raise CommandError("`soars dev setup` is for development mode only")
    asyncio.run(
        _with_owner(
            settings,
            lambda conn: set_up_sample_data(conn, settings, _print),
            create=True,
        )
    )


def cmd_schema_print(settings: Settings, args: argparse.Namespace) -> None:
    from schema import build_schema

    _print(build_schema().as_str().strip())


# -- serve ------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from soars import telemetry
    from soars.app import create_app, server_options

    # JSON log lines with request and trace ids, uvicorn's own included;
    # traces and metrics as the OTEL_* variables say.
    telemetry.configure_logging()
    telemetry.install()
    host = args.host or settings.host
    port = args.port or settings.port
    if (host, port) != (settings.host, settings.port) and not os.environ.get(
        "SOARS_PUBLIC_URL"
    ):
        settings = dataclasses.replace(
            settings, host=host, port=port, public_url=f"http://{host}:{port}"
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,  # request lines can carry ids; the app logs what it needs
        log_config=None,  # keep the JSON logging set up above
        **server_options(settings),
        ws="none",
        lifespan="on",
    )


# -- health -----------------------------------------------------------------


def cmd_health(settings: Settings, args: argparse.Namespace) -> None:
    import urllib.error
    import urllib.request

    path = "/readyz" if args.ready else "/healthz"
    if args.url:
        base = args.url.rstrip("/")
    else:
        # The service listening on all interfaces is reached over loopback.
        host = settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{settings.port}"
    try:
        with urllib.request.urlopen(base + path, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CommandError(f"{base}{path} did not answer: {reason}") from None
    _print(body.decode("utf-8", "replace").strip())
    if status != 200:
        raise SystemExit(1)


# -- parser -----------------------------------------------------------------


def subcommands(
    parser: argparse.ArgumentParser,
) -> list[tuple[str, str | None, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each command under `parser`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            return [
                (name, helps.get(name), sub) for name, sub in action.choices.items()
            ]
    return []


def _describe_groups(parser: argparse.ArgumentParser) -> None:
    # `soars audit --help` and the like: what the group is for (its one-line
    # help) and an example of each of its commands, taken from their own help.
    for _, help_text, group in subcommands(parser):
        commands = subcommands(group)
        if not commands:
            continue
        _describe_groups(group)
        examples = [
            line.strip()
            for _, _, command in commands
            for line in (command.epilog or "").splitlines()[1:]
            if line.strip()
        ]
        group.description = group.description or help_text
        group.epilog = group.epilog or "examples:\n" + "\n".join(
            f"  {example}" for example in examples
        )
        group.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soars",
        description="SOARS: student-level accountability files for LEAs and charter "
        "schools, every access audited.",
        epilog=EPILOG_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: Any, name: str, help: str, example: str
    ) -> argparse.ArgumentParser:
        return parent.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    serve = command(
        sub,
        "serve",
        "Run the service (GraphQL at /graphql).",
        "soars serve --port 8000",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve)

    health = command(
        sub,
        "health",
        "Ask a running service whether it is alive (/healthz) or ready to serve "
        "(--ready: database reachable, migrations current, signing keys loaded). "
        "Prints its answer; exits 1 if not. The container's HEALTHCHECK.",
        "soars health --ready --url http://127.0.0.1:8000",
    )
    health.add_argument(
        "--ready", action="store_true", help="ask /readyz, not /healthz"
    )
    health.add_argument(
        "--url", help="the service (default: SOARS_HOST and SOARS_PORT)"
    )
    health.add_argument(
        "--timeout", type=float, default=3.0, help="seconds (default 3)"
    )
    health.set_defaults(run=cmd_health)

    db = sub.add_parser(
        "db", help="The database: apply the migrations, as the owner role."
    ).add_subparsers(dest="db", required=True)
    command(
        db, "migrate", "Apply the SQL migrations not yet applied.", "soars db migrate"
    ).set_defaults(run=cmd_db_migrate)

    orgs = sub.add_parser(
        "orgs", help="Organizations: LEAs, schools and charters from CDE files."
    ).add_subparsers(dest="orgs", required=True)
    load = command(
        orgs,
        "load",
        "Load LEAs, schools, charter schools and county offices from the CDE "
        "directory file (and fill gaps from a Dashboard file). Idempotent.",
        "soars orgs load pubschls.txt graddownload2019.txt",
    )
    load.add_argument("paths", nargs="+", metavar="PATH")
    load.set_defaults(run=cmd_orgs_load)

    sample = sub.add_parser(
        "sample", help="Made-up student files whose counts match public CDE files."
    ).add_subparsers(dest="sample", required=True)
    cci = command(
        sample,
        "cci",
        "Write a made-up CCI student file whose per-school cohort sizes and group "
        "counts match the public 2019 graduation indicator file.",
        "soars sample cci --seed 7 --out cci-2019.csv",
    )
    cci.add_argument("--grad", help="graddownload2019.txt (default: in SOARS_CDE_DATA)")
    cci.add_argument("--seed", type=_whole_number, default=2019)
    cci.add_argument("--year", type=_whole_number, default=2019)
    cci.add_argument("--out", required=True)
    cci.set_defaults(run=cmd_sample_cci)
    ltel = command(
        sample,
        "ltel",
        "Write a made-up LTEL and at-risk student file: per school, as many English "
        "learners as the public 2019 English Learner Progress Indicator file counts, "
        "designated by Education Code 313.1.",
        "soars sample ltel --seed 7 --out ltel-2019.csv",
    )
    ltel.add_argument(
        "--elpi", help="elpidownload2019.txt (default: in SOARS_CDE_DATA)"
    )
    ltel.add_argument(
        "--directory", help="pubschls_2018-06-26.txt (default: in SOARS_CDE_DATA)"
    )
    ltel.add_argument("--seed", type=_whole_number, default=2019)
    ltel.add_argument("--year", type=_whole_number, default=2019)
    ltel.add_argument("--out", required=True)
    ltel.set_defaults(run=cmd_sample_ltel)

    releases = sub.add_parser(
        "releases", help="Releases: load a student file, publish it, list them."
    ).add_subparsers(dest="releases", required=True)
    rload = command(
        releases,
        "load",
        "Load a student file into a new release (or a draft given by --release), "
        "one report per LEA and charter school, all or nothing.",
        "soars releases load --type cci --year 2019 cci-2019.csv",
    )
    rload.add_argument("--type", choices=["cci", "ltel"], default="cci")
    rload.add_argument("--year", type=_whole_number, default=2019)
    rload.add_argument("--label")
    rload.add_argument(
        "--release", type=_release_number, help="load into this existing draft release"
    )
    rload.add_argument("file")
    rload.set_defaults(run=cmd_releases_load)
    pub = command(
        releases,
        "publish",
        "Make a loaded release visible to coordinators until a date.",
        "soars releases publish 1 --until 2027-06-30",
    )
    pub.add_argument("id", type=int)
    pub.add_argument("--until", required=True)
    pub.set_defaults(run=cmd_releases_publish)
    command(releases, "list", "List releases.", "soars releases list").set_defaults(
        run=cmd_releases_list
    )

    roles = sub.add_parser(
        "roles", help="Role assignments: who sees which organization's reports."
    ).add_subparsers(dest="roles", required=True)
    for name, runner, text in (
        ("grant", cmd_roles_grant, "Give a principal a role at an organization."),
        ("revoke", cmd_roles_revoke, "End a principal's role at an organization."),
    ):
        p = command(
            roles,
            name,
            text,
            f"soars roles {name} --subject alice --org 19647330000000 "
            "--role accountability_coordinator",
        )
        p.add_argument("--subject", required=True)
        p.add_argument("--org", required=True, metavar="CDS")
        p.add_argument("--role", required=True)
        p.add_argument(
            "--issuer", help="the token issuer (default: the configured one)"
        )
        if name == "grant":
            p.add_argument("--until", help="last day of the assignment, YYYY-MM-DD")
        p.set_defaults(run=runner)

    audit = sub.add_parser(
        "audit", help="The audit trail: export, verify, sign checkpoints, keys."
    ).add_subparsers(dest="audit", required=True)
    export = command(
        audit,
        "export",
        "Print the audit trail as JSON lines: a header, the signed checkpoints, "
        "then the events oldest first (one organization's chain with --org).",
        "soars audit export --org 19647330000000 > lausd-audit.jsonl",
    )
    export.add_argument("--org", metavar="CDS")
    export.set_defaults(run=cmd_audit_export)
    verify = command(
        audit,
        "verify",
        "Recompute every hash chain and check every checkpoint's signature; name "
        "the first bad event of each chain; exit 1 if anything is wrong.",
        "soars audit verify --public-key audit-public.pem",
    )
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="PEM",
        help="verify checkpoints with this key (repeatable; default: "
        "SOARS_AUDIT_PUBLIC_KEY, else the signing key's)",
    )
    verify.set_defaults(run=cmd_audit_verify)
    verify_file = command(
        audit,
        "verify-export",
        "Verify an export file with the public key alone, no database: how an "
        "LEA checks its own chain. Exit 1 if anything is wrong.",
        "soars audit verify-export lausd-audit.jsonl --public-key audit-public.pem",
    )
    verify_file.add_argument("file", metavar="FILE")
    verify_file.add_argument("--public-key", action="append", metavar="PEM")
    verify_file.set_defaults(run=cmd_audit_verify_export)
    command(
        audit,
        "checkpoint",
        "Sign the heads of the chains that grew since the last checkpoint "
        "(SOARS_AUDIT_SIGNING_KEY).",
        "soars audit checkpoint",
    ).set_defaults(run=cmd_audit_checkpoint)
    keygen = command(
        audit,
        "keygen",
        "Make a new Ed25519 checkpoint signing key (mode 0600); print its public key.",
        "soars audit keygen /etc/soars/audit-signing.pem > audit-public.pem",
    )
    keygen.add_argument("path", metavar="PATH")
    keygen.set_defaults(run=cmd_audit_keygen)
    command(
        audit,
        "public-key",
        "Print the public key that verifies this service's checkpoints (PEM), to "
        "hand to auditors and LEAs.",
        "soars audit public-key > audit-public.pem",
    ).set_defaults(run=cmd_audit_public_key)

    schema = sub.add_parser(
        "schema", help="The GraphQL schema: print its SDL."
    ).add_subparsers(dest="schema", required=True)
    command(
        schema, "print", "Print the GraphQL SDL.", "soars schema print > schema.graphql"
    ).set_defaults(run=cmd_schema_print)

    dev = sub.add_parser(
        "dev", help="Development mode: tokens of the development issuer, sample data."
    ).add_subparsers(dest="dev", required=True)
    token = command(
        dev,
        "token",
        "Print an access token from the development issuer (refused in production).",
        "soars dev token --subject alice",
    )
    token.add_argument("--subject", required=True)
    token.add_argument("--ttl", type=int, default=3600)
    token.add_argument("--client", action="store_true", help="a machine client's token")
    token.add_argument("--name")
    token.set_defaults(run=cmd_dev_token)
    command(
        dev,
        "setup",
        "Load the real directory, a sample CCI release and demo users (idempotent).",
        "soars dev setup",
    ).set_defaults(run=cmd_dev_setup)
    _describe_groups(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        args.run(settings, args)
    except SettingsError as error:
        sys.exit(f"soars: configuration error: {error}")
    except CommandError as error:
        sys.exit(f"soars: {error}")
    except Exception as error:
        from db.errors import LoadError
        from db.releases import ReleaseError
        from db.roles import RoleError

        if isinstance(error, LoadError | ReleaseError | RoleError):
            sys.exit(f"soars: {error}")
        if isinstance(error, asyncpg.PostgresError):
            # The server's message and detail can quote row values (student
            # data); only the kind of failure is shown.
            sys.exit(
                f"soars: the database refused the operation ({type(error).__name__}, "
                f"SQLSTATE {error.sqlstate}); nothing of it was kept"
            )
        raise


if __name__ == "__main__":
    main()
