"""The embedded PostgreSQL: start, connect, stop, stale servers and the lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from db import embedded
from db.embedded import FALLBACK_PARENT, EmbeddedPostgres, EmbeddedPostgresError

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0

Factory = Callable[[Path], EmbeddedPostgres]


@pytest.fixture
def make_pg() -> Iterator[Factory]:
    """Managers that are stopped, and whose servers and /var/tmp homes are
    removed, after the test, whatever happened in it."""
    made: list[EmbeddedPostgres] = []

    def make(data_dir: Path) -> EmbeddedPostgres:
        made.append(EmbeddedPostgres(data_dir))
        return made[-1]

    yield make
    for pg in made:
        pg.stop()
    for pg in made:
        _kill_cluster_processes(pg.layout.cluster_dir)
        for home in {pg.layout.cluster_dir.parent, pg.layout.socket_dir.parent}:
            if home.parent == FALLBACK_PARENT:
                shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def searchable_dir() -> Iterator[Path]:
    """A folder every user may search (pytest's tmp_path is 0700), with a
    space in its name to exercise the DSN and config quoting."""
    path = Path(tempfile.mkdtemp(prefix="soars emb "))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_start_connect_stop(make_pg: Factory, searchable_dir: Path) -> None:
    pg = make_pg(searchable_dir / "data")

    dsn = pg.start()

    assert pg.layout.notes == ()
    assert pg.layout.cluster_dir == searchable_dir / "data" / "pgdata"
    assert "PostgreSQL 18" in str(asyncio.run(_fetch(dsn, "select version()")))
    assert asyncio.run(_fetch(dsn, "show listen_addresses")) == ""
    assert asyncio.run(_fetch(dsn, "show shared_buffers")) == "128MB"
    postmaster = _postmaster_pid(pg)
    if IS_ROOT:
        assert _uid_of(postmaster) == 65534  # nobody, never root

    pg.stop()
    pg.stop()  # idempotent

    assert _cluster_processes(pg.layout.cluster_dir) == []
    with pytest.raises(EmbeddedPostgresError, match="not running"):
        _ = pg.dsn


@pytest.mark.skipif(not IS_ROOT, reason="only root runs the server as nobody")
def test_private_parent_moves_cluster_to_var_tmp(
    make_pg: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    caplog.set_level(logging.INFO, logger="soars.db.embedded")
    pg = make_pg(private / "data")

    dsn = pg.start()

    assert pg.layout.cluster_dir.parent.parent == FALLBACK_PARENT
    assert "not searchable by user nobody" in pg.layout.notes[0]
    assert "embedded postgres relocated" in caplog.messages
    assert asyncio.run(_fetch(dsn, "select 1")) == 1
    assert oct(private.stat().st_mode & 0o777) == "0o700"  # left as it was


def test_long_path_moves_socket_only(make_pg: Factory, searchable_dir: Path) -> None:
    data_dir = searchable_dir / ("d" * 100)
    pg = make_pg(data_dir)

    dsn = pg.start()

    assert pg.layout.cluster_dir == data_dir / "pgdata"
    assert pg.layout.socket_dir.parent.parent == FALLBACK_PARENT
    assert "too long" in pg.layout.notes[0]
    assert asyncio.run(_fetch(dsn, "select 1")) == 1


def test_stale_server_of_a_killed_run_is_stopped(
    make_pg: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    child = _start_in_child(data_dir)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.stdout is not None
    child.stdout.close()
    pg = make_pg(data_dir)
    stale = _postmaster_pid(pg)
    assert _is_alive(stale), "the killed run should have left its server running"
    caplog.set_level(logging.INFO, logger="soars.db.embedded")

    dsn = pg.start()

    assert "stale embedded postgres found, stopping it" in caplog.messages
    assert not _is_alive(stale)
    assert _postmaster_pid(pg) != stale
    assert asyncio.run(_fetch(dsn, "select 1")) == 1


def test_stale_pidfile_of_a_dead_server_is_ignored(
    make_pg: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pg = make_pg(tmp_path / "data")
    pg.start()
    pidfile = pg.layout.cluster_dir / "postmaster.pid"
    lines = pidfile.read_text().splitlines(keepends=True)
    pg.stop()
    pidfile.write_text(f"{_dead_pid()}\n" + "".join(lines[1:]))
    caplog.set_level(logging.INFO, logger="soars.db.embedded")

    dsn = pg.start()

    assert not any("stale" in message for message in caplog.messages)
    assert asyncio.run(_fetch(dsn, "select 1")) == 1


def test_second_manager_of_a_cluster_is_refused(
    make_pg: Factory, tmp_path: Path
) -> None:
    first = make_pg(tmp_path / "data")
    second = make_pg(tmp_path / "data")
    dsn = first.start()

    with pytest.raises(EmbeddedPostgresError, match="already managed by another"):
        second.start()

    assert asyncio.run(_fetch(dsn, "select 1")) == 1  # the first is untouched
    first.stop()
    assert asyncio.run(_fetch(second.start(), "select 1")) == 1


def test_stop_from_a_signal_handler(make_pg: Factory, tmp_path: Path) -> None:
    pg = make_pg(tmp_path / "data")
    pg.start()
    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: pg.stop())
    try:
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        pg.stop()  # what a caller's `finally` does next

    assert _cluster_processes(pg.layout.cluster_dir) == []


def test_shutdown_escalates_when_the_server_ignores_signals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embedded, "FAST_STOP_TIMEOUT_S", 0.2)
    monkeypatch.setattr(embedded, "SIGNAL_STOP_TIMEOUT_S", 0.2)
    stubborn = subprocess.Popen(
        [sys.executable, "-c", _IGNORE_INT_AND_QUIT], stdout=subprocess.PIPE
    )
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"
    stubborn.stdout.close()
    server = embedded._Postmaster(
        stubborn.pid, os.pidfd_open(stubborn.pid), Path("/nonexistent")
    )

    with contextlib.closing(server):
        assert server.shut_down() == "killed"

    assert not _is_alive(stubborn.pid)
    stubborn.wait(timeout=5)  # shut_down() already reaped it: no status left


def test_stop_before_start_does_nothing(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "data")

    pg.stop()

    assert not (tmp_path / "data").exists()


# -- helpers ----------------------------------------------------------------

_IGNORE_INT_AND_QUIT = (
    "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGQUIT, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


async def _fetch(dsn: str, query: str) -> object:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def _start_in_child(data_dir: Path) -> subprocess.Popen[str]:
    """A process that starts the server and then waits to be killed."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from db.embedded import EmbeddedPostgres\n"
        "print(EmbeddedPostgres(Path(sys.argv[1])).start(), flush=True)\n"
        "time.sleep(120)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready and child.stdout.readline().startswith("postgresql://")
    return child


def _postmaster_pid(pg: EmbeddedPostgres) -> int:
    pidfile = pg.layout.cluster_dir / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0])


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _cluster_processes(cluster: Path) -> list[int]:
    """Every postgres process (postmaster or child) working in `cluster`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            if os.path.realpath(os.readlink(proc / "cwd")) == os.path.realpath(cluster):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _kill_cluster_processes(cluster: Path) -> None:
    for pid in _cluster_processes(cluster):
        os.kill(pid, signal.SIGKILL)
