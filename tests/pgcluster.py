"""Throwaway PostgreSQL clusters, a fault-injecting TCP proxy and a silent-link lab for tests.

Nothing here touches the shared server: every cluster lives in its own temp dir, on its own
loopback port, and is stopped and removed when the test is done -- or, should the test process die
without running ``atexit`` (SIGKILL, OOM), by a small watchdog process that notices its pipe to us
close.

When run as root the PostgreSQL binaries run as the ``postgres`` OS user (initdb and pg_ctl refuse
root); otherwise they run as the current user.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pwd
import selectors
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "Cluster",
    "ClusterError",
    "PgBouncer",
    "SilentLinkLab",
    "TcpProxy",
    "free_port",
    "pg_bindir",
]

HOST = "127.0.0.1"
"""The only address anything here listens on or connects to."""

StopMode = Literal["smart", "fast", "immediate"]

_REPO_ROOT = Path(__file__).resolve().parent.parent
_PG_USER = "postgres"
_INITDB_TIMEOUT = 60.0
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_BASEBACKUP_TIMEOUT = 120.0
_IP_TIMEOUT = 10.0


class ClusterError(RuntimeError):
    """A PostgreSQL tool failed; the message carries the command, its output and the log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@functools.cache
def pg_bindir() -> Path:
    """Directory of the PostgreSQL server binaries (``$NXDATA_PG_BINDIR`` or ``pg_config``)."""
    env = os.environ.get("NXDATA_PG_BINDIR")
    if env:
        found = Path(env)
    else:
        try:
            out = subprocess.run(
                ["pg_config", "--bindir"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            found = Path(out)
        except (OSError, subprocess.SubprocessError):
            # Debian keeps the server binaries off PATH; take the newest installed major.
            candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major_key)
            if not candidates:
                raise ClusterError("no PostgreSQL binaries: set NXDATA_PG_BINDIR") from None
            found = candidates[-1]
    if not (found / "initdb").exists():
        raise ClusterError(f"{found} has no initdb: set NXDATA_PG_BINDIR")
    return found


def _major_key(path: Path) -> int:
    name = path.parent.name
    return int(name) if name.isdigit() else 0


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_pg_user() -> list[str]:
    """Command prefix that drops root to the postgres user (empty when not root)."""
    return ["runuser", "-u", _PG_USER, "--"] if _is_root() else []


def _clean_env() -> dict[str, str]:
    # PGHOST, PGPORT, PGDATA... from the caller's environment would silently redirect the tools.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _run(
    cmd: Sequence[str],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool with a timeout; raise ClusterError with everything needed to diagnose it."""
    try:
        proc = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_clean_env(),
            # The server inherits our session otherwise; a Ctrl-C to pytest's process group would
            # then shut it down behind the test's back.
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(
            _describe(f"{what} timed out after {timeout:g}s", cmd, exc.stdout, exc.stderr, log)
        ) from None
    if proc.returncode != 0:
        raise ClusterError(
            _describe(
                f"{what} failed with exit code {proc.returncode}",
                cmd,
                proc.stdout,
                proc.stderr,
                log,
            )
        )
    return proc


def _describe(
    headline: str,
    cmd: Sequence[str],
    stdout: str | bytes | None,
    stderr: str | bytes | None,
    log: Path | None,
) -> str:
    def text(value: str | bytes | None) -> str:
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        return value or ""

    parts = [headline, f"command: {shlex.join(cmd)}"]
    if text(stdout).strip():
        parts.append(f"stdout:\n{text(stdout).rstrip()}")
    if text(stderr).strip():
        parts.append(f"stderr:\n{text(stderr).rstrip()}")
    if log is not None:
        parts.append(f"server log ({log}), last lines:\n{_tail(log, 30) or '(empty)'}")
    return "\n".join(parts)


def _pid_alive(pid: int) -> bool:
    # A zombie still answers kill(pid, 0) until whoever adopted it reaps it, so ask /proc.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


class _Watchdog:
    """A shell that runs a cleanup script unless told, over its stdin, that we cleaned up.

    If the test process dies without atexit (SIGKILL, OOM killer, CI timeout), the kernel closes
    our end of the pipe, ``read`` hits EOF and the shell stops the server and removes its files.
    """

    def __init__(self, cleanup: str) -> None:
        # Ignoring INT/HUP keeps a Ctrl-C or a closed terminal from killing it before it has
        # cleaned up; `read` fails only on EOF, i.e. when our process is gone.
        script = f"trap '' INT HUP\nif read -r _line; then exit 0; fi\n{cleanup}\n"
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=_clean_env(),
        )

    def disarm(self) -> None:
        """Tell the watchdog we cleaned up ourselves, and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(b"done\n")
            proc.stdin.flush()
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


_live_lock = threading.Lock()
_live: list[Cluster | SilentLinkLab | PgBouncer] = []


def _register(obj: Cluster | SilentLinkLab | PgBouncer) -> None:
    with _live_lock:
        _live.append(obj)


def _unregister(obj: Cluster | SilentLinkLab | PgBouncer) -> None:
    with _live_lock, contextlib.suppress(ValueError):
        _live.remove(obj)


@atexit.register
def _cleanup_at_exit() -> None:
    with _live_lock:
        leftovers = list(reversed(_live))
    for obj in leftovers:
        try:
            obj.destroy()
        except Exception as exc:  # at exit, report and go on with the rest
            print(f"pgcluster: cleanup of {obj!r} failed: {exc}", file=sys.stderr)


def _conf_value(value: str) -> str:
    # Every GUC type accepts a quoted value, so quoting everything is always right.
    return "'" + value.replace("'", "''") + "'"


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1, built by initdb in a fresh temp dir.

    ``with Cluster() as c:`` starts it and destroys it (server stopped, files removed) at exit.
    ``netns`` runs the server inside that network namespace (root only; see SilentLinkLab).
    """

    host = HOST

    def __init__(
        self,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        *,
        netns: str | None = None,
    ) -> None:
        """Configure, but do not start, a cluster; ``settings`` go into postgresql.conf."""
        if netns is not None and not _is_root():
            raise ClusterError("a cluster in a network namespace needs root")
        self._port_fixed = port is not None
        self.port: int = port if port is not None else free_port()
        """TCP port the server listens on."""
        self.settings: dict[str, str] = dict(settings or {})
        """Extra postgresql.conf settings, applied after the defaults."""
        self.netns = netns
        """Network namespace the server runs in, if any."""
        self.base_dir: Path | None = None
        """The temp dir holding data, socket and log; None before start and after destroy."""
        self._watchdog: _Watchdog | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        where = f" netns={self.netns}" if self.netns else ""
        return f"<Cluster {self.host}:{self.port}{where} dir={self.base_dir}>"

    # -- paths and addresses ------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory."""
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's Unix socket (it works across network namespaces)."""
        return self._base()

    @property
    def log_path(self) -> Path:
        """The server log file."""
        return self._base() / "server.log"

    @property
    def url(self) -> str:
        """libpq URL of the ``postgres`` database as user ``postgres`` over TCP."""
        return self.dsn()

    def dsn(self, dbname: str = "postgres", user: str = "postgres", **params: str | int) -> str:
        """libpq URL for ``dbname`` as ``user`` over TCP; ``params`` become query parameters."""
        query = urlencode({k: str(v) for k, v in params.items()})
        return urlunsplit(
            (
                "postgresql",
                f"{quote(user, safe='')}@{self.host}:{self.port}",
                "/" + quote(dbname, safe=""),
                query,
                "",
            )
        )

    def _base(self) -> Path:
        if self.base_dir is None:
            raise ClusterError(f"{self!r} is not started (or already destroyed)")
        return self.base_dir

    def _prefix(self) -> list[str]:
        netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        return netns + _as_pg_user()

    def _tool(self, name: str, *args: str) -> list[str]:
        return [*self._prefix(), str(pg_bindir() / name), *args]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """initdb into a fresh temp dir, configure and start the server; returns self."""
        with self._lock:
            if self.base_dir is not None:
                raise ClusterError(f"{self!r} was already started; use start_again()")
            self._make_dir()
            try:
                initdb = ["-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
                initdb += ["--locale=C.UTF-8", "--no-sync", "--no-instructions"]
                _run(self._tool("initdb", *initdb), timeout=_INITDB_TIMEOUT, what="initdb")
                self._write_config()
                self._start_with_port_retry()
            except BaseException:
                self.destroy()
                raise
            return self

    def _make_dir(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="nxdata-pgcluster-"))
        if _is_root():
            pw = pwd.getpwnam(_PG_USER)
            os.chown(base, pw.pw_uid, pw.pw_gid)
        self.base_dir = base
        _register(self)
        stop = shlex.join(
            self._tool("pg_ctl", "stop", "-D", str(base / "data"), "-m", "immediate", "-t", "20")
        )
        self._watchdog = _Watchdog(f"{stop} >/dev/null 2>&1\nrm -rf {shlex.quote(str(base))}")

    def _write_config(self) -> None:
        defaults = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.socket_dir),
            # Durability is pointless for a throwaway cluster and costs seconds per test.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "50",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            # A standby whose link is frozen for a while must still find its WAL on the primary.
            "wal_keep_size": "256MB",
            # stderr goes to server.log through pg_ctl -l; a collector process would only add
            # start-up time.
            "logging_collector": "off",
            "log_line_prefix": "%m [%p] %q%u@%d ",
        }
        self._append_config({**defaults, "port": str(self.port), **self.settings})
        hba = (
            "local all all trust\n"
            f"host all all {HOST}/32 trust\n"
            "local replication all trust\n"
            f"host replication all {HOST}/32 trust\n"
        )
        # Truncating keeps the file's owner (postgres), unlike replacing it.
        with (self.data_dir / "pg_hba.conf").open("w") as fh:
            fh.write(hba)

    def _append_config(self, values: Mapping[str, str]) -> None:
        # Later lines win in postgresql.conf, so appending overrides what initdb or the primary
        # (for a standby copied by pg_basebackup) wrote.
        lines = "".join(f"{k} = {_conf_value(v)}\n" for k, v in values.items())
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# pgcluster\n" + lines)

    def _start_with_port_retry(self) -> None:
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            try:
                self._pg_ctl_start()
                return
            except ClusterError:
                # free_port() can race with another process grabbing the port before we bind.
                if attempt + 1 == attempts or "could not bind" not in self.log_text(20):
                    raise
                self.port = free_port()
                self._append_config({"port": str(self.port)})

    def _pg_ctl_start(self) -> None:
        args = ["start", "-D", str(self.data_dir), "-l", str(self.log_path), "-s"]
        args += ["-w", "-t", str(int(_START_TIMEOUT))]
        _run(
            self._tool("pg_ctl", *args),
            timeout=_START_TIMEOUT + 10,
            what="pg_ctl start",
            log=self.log_path,
        )

    def start_again(self) -> None:
        """Start the server again on the same data dir (no-op if it is running)."""
        with self._lock:
            self._base()
            if not self.is_running():
                self._pg_ctl_start()

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop with ``mode`` and start again; existing connections are broken."""
        with self._lock:
            self.stop(mode)
            self.start_again()

    def postmaster_pid(self) -> int | None:
        """PID of the running postmaster, or None."""
        if self.base_dir is None:
            return None
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def is_running(self) -> bool:
        """Whether the postmaster is alive."""
        return self.postmaster_pid() is not None

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (fast: roll back and disconnect; immediate: crash-like). Idempotent."""
        with self._lock:
            pid = self.postmaster_pid()
            if pid is None:
                return
            try:
                args = ["stop", "-D", str(self.data_dir), "-m", mode, "-s"]
                args += ["-w", "-t", str(int(_STOP_TIMEOUT))]
                _run(
                    self._tool("pg_ctl", *args),
                    timeout=_STOP_TIMEOUT + 10,
                    what=f"pg_ctl stop -m {mode}",
                    log=self.log_path,
                )
            except ClusterError:
                if self.postmaster_pid() is None:
                    return  # it exited between our check and pg_ctl's: that is what we wanted
                # Last resort, so a wedged server never outlives the test.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
                raise

    def kill(self) -> None:
        """Immediate stop: no checkpoint, clients see their connection drop, recovery on start."""
        self.stop("immediate")

    def destroy(self) -> None:
        """Stop the server (immediate: the data is discarded anyway) and remove its temp dir."""
        with self._lock:
            if self.base_dir is None:
                return
            try:
                self.stop("immediate")
            finally:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None
                if self._watchdog is not None:
                    self._watchdog.disarm()
                    self._watchdog = None
                _unregister(self)

    def __enter__(self) -> Self:
        if self.base_dir is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def log_text(self, lines: int = 50) -> str:
        """The last ``lines`` lines of the server log, for failure messages."""
        if self.base_dir is None:
            return ""
        return _tail(self.log_path, lines)

    # -- SQL ----------------------------------------------------------------------------------

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        """An autocommit psycopg connection over the Unix socket (bypasses proxies and netns)."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=dbname,
            **kwargs,
        )

    def execute(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        dbname: str = "postgres",
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; returns its rows (empty if it returns none)."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def scalar(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """First column of the first row of ``sql`` (None if no row)."""
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    # -- replication --------------------------------------------------------------------------

    def standby(self, port: int | None = None, *, via_port: int | None = None) -> Cluster:
        """A started streaming-replication standby of this cluster (pg_basebackup -R -X stream).

        ``via_port`` makes the standby (and the base backup) reach the primary through that port
        on 127.0.0.1, e.g. a TcpProxy's, to inject faults into replication.
        """
        self._base()
        replica = Cluster(port=port, settings=self.settings, netns=self.netns)
        replica._make_dir()
        try:
            primary_port = via_port if via_port is not None else self.port
            args = ["-D", str(replica.data_dir), "-h", HOST, "-p", str(primary_port)]
            # -c fast: don't wait for a spread checkpoint on the primary.
            args += ["-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"]
            _run(
                replica._tool("pg_basebackup", *args),
                timeout=_BASEBACKUP_TIMEOUT,
                what="pg_basebackup",
                log=self.log_path,
            )
            replica._append_config(
                {
                    "port": str(replica.port),
                    "unix_socket_directories": str(replica.socket_dir),
                    **self.settings,
                }
            )
            replica._start_with_port_retry()
        except BaseException:
            replica.destroy()
            raise
        return replica

    def is_in_recovery(self) -> bool:
        """Whether this server is a standby (pg_is_in_recovery())."""
        return bool(self.scalar("SELECT pg_is_in_recovery()"))

    def wait_for_replay(self, standby: Cluster, timeout: float = 10.0) -> None:
        """Block until ``standby`` has replayed all WAL this primary has written so far."""
        with self.connect() as conn:
            # With synchronous_commit=off the latest commits may still sit in WAL buffers, which
            # walsenders don't send. A synchronous commit flushes everything before it, but only
            # if the transaction wrote WAL (an xid alone is not enough): emit a tiny message.
            conn.execute("SET synchronous_commit = on")
            conn.execute("SELECT pg_logical_emit_message(true, 'pgcluster', 'flush')")
            row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        assert row is not None
        target: str = row[0]
        deadline = time.monotonic() + timeout
        replayed: Any = None
        while True:
            replayed, done = standby.execute(
                "SELECT pg_last_wal_replay_lsn()::text,"
                " coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)",
                (target,),
            )[0]
            if done:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"standby {standby!r} replayed up to {replayed}, primary is at {target},"
                    f" after {timeout:g}s\nstandby log:\n{standby.log_text(20)}"
                )
            time.sleep(0.02)

    def pause_replay(self) -> None:
        """On a standby: pause WAL replay (it still receives WAL)."""
        self.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        """On a standby: resume WAL replay."""
        self.execute("SELECT pg_wal_replay_resume()")

    def replay_lag_seconds(self) -> float:
        """On a standby: how old the last replayed commit is, 0.0 if all received WAL is replayed.

        ``inf`` when WAL is pending but no transaction was replayed since the standby started.
        """
        receive, replay, age = self.execute(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
            " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
        )[0]
        if receive is not None and receive == replay:
            return 0.0
        return float("inf") if age is None else max(float(age), 0.0)


# -- TCP proxy --------------------------------------------------------------------------------

_BUFFER_LIMIT = 1 << 20
_LINGER_RST = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: SO_LINGER on, timeout 0."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()


class _Link:
    """One proxied connection: the client's socket, ours to the server, and bytes in flight."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.pending: dict[socket.socket, bytearray] = {client: bytearray(), server: bytearray()}
        self.eof: set[socket.socket] = set()
        self.shut: set[socket.socket] = set()

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.server if sock is self.client else self.client


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of a cluster, for fault injection.

    One selector thread does all the work, so every fault is applied between two forwarding
    steps; the fault methods hand their work to that thread and return once it is done.
    """

    def __init__(self, target: Cluster | tuple[str, int], port: int | None = None) -> None:
        """Forward to ``target`` (a Cluster or ``(host, port)``); listen on ``port`` or any."""
        self._target = target
        self.port: int = port if port is not None else free_port()
        """The proxy's listening port on 127.0.0.1."""
        self._listener: socket.socket | None = None
        self._links: list[_Link] = []
        self._frozen = False
        self._thread: threading.Thread | None = None
        self._selector: selectors.DefaultSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._calls: list[tuple[Callable[[], Any], threading.Event, list[Any]]] = []
        self._calls_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._interest: dict[socket.socket, int] = {}
        self._stopping = False

    def __repr__(self) -> str:
        return f"<TcpProxy {HOST}:{self.port} -> {self.target[0]}:{self.target[1]}>"

    @property
    def target(self) -> tuple[str, int]:
        """Where connections are forwarded to."""
        # Read a cluster's port late: it may change if its first start lost a port race.
        if isinstance(self._target, Cluster):
            return (self._target.host, self._target.port)
        return self._target

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start listening and forwarding; returns self."""
        with self._state_lock:
            if self._thread is not None:
                raise RuntimeError(f"{self!r} is already started")
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)  # a full wake-up buffer already means "wake up"
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            try:
                self._listen()
            except BaseException:
                self._close_all()
                raise
            self._thread = threading.Thread(target=self._loop, name=f"{self!r}", daemon=True)
            self._thread.start()
            return self

    def stop(self) -> None:
        """Reset every proxied connection, stop listening and end the thread. Idempotent."""
        with self._state_lock:
            thread = self._thread
            if thread is None:
                return
            if thread.is_alive():
                self._call(self._shutdown)
                thread.join(timeout=10)
            self._thread = None
            self._close_all()

    def url_for(self, url_or_dsn: str) -> str:
        """The same libpq URL or key=value DSN, but pointing at this proxy."""
        if url_or_dsn.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(url_or_dsn)
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = f"{userinfo}@" if userinfo else ""
            query = [
                (k, v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
                if k not in ("host", "hostaddr", "port")
            ]
            return urlunsplit(
                (
                    parts.scheme,
                    f"{netloc}{HOST}:{self.port}",
                    parts.path,
                    urlencode(query),
                    parts.fragment,
                )
            )
        params = conninfo_to_dict(url_or_dsn)
        params.pop("hostaddr", None)
        params.update(host=HOST, port=str(self.port))
        return make_conninfo("", **params)

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database through this proxy."""
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def cut(self) -> int:
        """Reset (RST, both sides) every proxied connection; keep accepting new ones.

        Returns how many connections were cut.
        """
        return int(self._call(self._cut_all))

    def refuse(self) -> None:
        """Close the listening socket: new connections get ECONNREFUSED, existing ones live on."""
        self._call(self._unlisten)

    def accept_again(self) -> None:
        """Listen again (same port) after refuse()."""
        self._call(self._listen)

    def freeze(self) -> None:
        """Stop forwarding bytes both ways, closing nothing; connections made meanwhile hang too.

        A userspace stand-in for a dead link: the kernel of the proxy still ACKs what the client
        and the server send, so TCP keepalives and ``tcp_user_timeout`` never fire -- only
        application-level timeouts (statement_timeout on the client side, connect_timeout,
        pool timeouts) can notice. SilentLinkLab gives a link where packets really vanish.
        """
        self._call(lambda: self._set_frozen(True))

    def thaw(self) -> None:
        """Resume forwarding after freeze(); nothing buffered meanwhile is lost."""
        self._call(lambda: self._set_frozen(False))

    @property
    def frozen(self) -> bool:
        """Whether forwarding is frozen."""
        return self._frozen

    def active_connections(self) -> int:
        """How many connections are currently proxied."""
        return int(self._call(lambda: len(self._links)))

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- running code on the selector thread --------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        thread = self._thread
        if thread is None or not thread.is_alive():
            raise RuntimeError(f"{self!r} is not running")
        if threading.current_thread() is thread:
            return fn()
        done = threading.Event()
        result: list[Any] = []
        with self._calls_lock:
            self._calls.append((fn, done, result))
        assert self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not done.wait(timeout=10):
            raise RuntimeError(f"{self!r}: the proxy thread did not answer within 10s")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def _run_calls(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, done, result in calls:
            try:
                result.append(fn())
            except Exception as exc:  # handed back to the caller's thread
                result.append(exc)
            done.set()

    # -- the selector thread ------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._selector is not None
        while True:
            self._update_interest()
            for key, mask in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if key.data is None:
                    self._run_calls()
                elif sock is self._listener:
                    self._accept()
                else:
                    link: _Link = key.data
                    if link not in self._links:
                        continue  # reset earlier in this batch
                    if mask & selectors.EVENT_READ:
                        self._read(link, sock)
                    if link in self._links:
                        self._flush(link)
            if self._stopping:
                return

    def _shutdown(self) -> None:
        self._cut_all()
        self._unlisten()
        self._stopping = True

    def _close_all(self) -> None:
        for link in self._links:
            _reset(link.client)
            _reset(link.server)
        self._links = []
        self._interest = {}
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        self._stopping = False

    def _listen(self) -> None:
        if self._listener is not None:
            return
        assert self._selector is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._selector.register(sock, selectors.EVENT_READ, "listen")

    def _unlisten(self) -> None:
        if self._listener is None:
            return
        assert self._selector is not None
        self._selector.unregister(self._listener)
        # Connections still in the accept backlog get an RST from the kernel here.
        self._listener.close()
        self._listener = None

    def _set_frozen(self, frozen: bool) -> None:
        self._frozen = frozen

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            try:
                # Loopback connects answer at once (accepted or refused), so blocking is fine.
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)  # the client sees its connection reset, as if the server were down
                continue
            for sock in (client, server):
                sock.setblocking(False)
                # Protocol messages are small; Nagle plus delayed ACK would add 40 ms stalls.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._links.append(_Link(client, server))

    def _update_interest(self) -> None:
        assert self._selector is not None
        wanted: dict[socket.socket, tuple[int, _Link]] = {}
        for link in self._links:
            for sock in (link.client, link.server):
                mask = 0
                if not self._frozen:
                    peer = link.peer(sock)
                    if sock not in link.eof and len(link.pending[peer]) < _BUFFER_LIMIT:
                        mask |= selectors.EVENT_READ
                    if link.pending[sock]:
                        mask |= selectors.EVENT_WRITE
                wanted[sock] = (mask, link)
        for sock in list(self._interest):
            if wanted.get(sock, (0, None))[0] == 0:
                self._selector.unregister(sock)
                del self._interest[sock]
        for sock, (mask, link) in wanted.items():
            if mask == 0:
                continue
            if sock not in self._interest:
                self._selector.register(sock, mask, link)
            elif self._interest[sock] != mask:
                self._selector.modify(sock, mask, link)
            self._interest[sock] = mask

    def _read(self, link: _Link, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(link, reset=True)  # pass a reset on to the other side
            return
        if chunk:
            link.pending[link.peer(sock)] += chunk
        else:
            link.eof.add(sock)

    def _flush(self, link: _Link) -> None:
        if self._frozen:
            return
        for sock in (link.client, link.server):
            buf = link.pending[sock]
            if buf:
                try:
                    sent = sock.send(buf)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    self._drop(link, reset=True)
                    return
                del buf[:sent]
            # Pass a half-close on once everything before it has been delivered.
            if not buf and link.peer(sock) in link.eof and sock not in link.shut:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                link.shut.add(sock)
        if len(link.shut) == 2:
            self._drop(link, reset=False)

    def _drop(self, link: _Link, *, reset: bool) -> None:
        assert self._selector is not None
        for sock in (link.client, link.server):
            if sock in self._interest:
                self._selector.unregister(sock)
                del self._interest[sock]
            if reset:
                _reset(sock)
            else:
                sock.close()
        self._links.remove(link)

    def _cut_all(self) -> int:
        links = list(self._links)
        for link in links:
            self._drop(link, reset=True)
        return len(links)


# -- silent link ------------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *args]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_IP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(f"timed out: {shlex.join(cmd)}") from None
    if check and proc.returncode != 0:
        raise ClusterError(
            _describe(f"exit code {proc.returncode}", cmd, proc.stdout, proc.stderr, None)
        )
    return proc


class SilentLinkLab:
    """A cluster and its clients in a private network namespace whose loopback can be cut.

    ``freeze()`` sets the namespace's ``lo`` down. The 127.0.0.1 routes stay, but the kernel
    drops every packet handed to the down device (counted as lo TX drops): no RST, no ICMP, no
    error to the sender -- a silent link, for established connections and new SYNs alike. A query
    sent then hangs until ``tcp_user_timeout`` fires ("could not receive data from server:
    Connection timed out"); keepalives alone don't help while data is unacknowledged, and without
    either, TCP retransmits for many minutes (tcp_retries2). An idle connection with keepalives is
    found dead and the next query fails at once. ``thaw()`` brings ``lo`` back and retransmissions
    get through: a query in flight then completes. Needs root (``ip netns``).

    Clients must run inside the namespace: use ``run_python`` / ``spawn_python``. The cluster's
    ``execute()`` still works from outside (and while frozen) through its Unix socket.
    """

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        """Configure, but do not create, the namespace and its cluster."""
        if not _is_root():
            raise ClusterError("SilentLinkLab needs root for ip netns")
        self.netns = f"nxdata-silent-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        """Name of the private network namespace."""
        self.cluster = Cluster(settings=settings, netns=self.netns)
        """The cluster running inside the namespace."""
        self._created = False
        self._watchdog: _Watchdog | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<SilentLinkLab netns={self.netns}>"

    @property
    def url(self) -> str:
        """URL of the cluster; only reachable from inside the namespace."""
        return self.cluster.url

    def start(self) -> Self:
        """Create the namespace, bring its loopback up and start the cluster in it."""
        with self._lock:
            if self._created:
                raise ClusterError(f"{self!r} was already started")
            _register(self)
            ns = shlex.quote(self.netns)
            # Processes left in the namespace would keep it alive after `ip netns del`.
            self._watchdog = _Watchdog(
                f"ip netns pids {ns} 2>/dev/null | xargs -r kill -9\nip netns del {ns}"
            )
            try:
                _ip("netns", "add", self.netns)
                self._created = True
                _ip("-n", self.netns, "link", "set", "lo", "up")
                self.cluster.start()
            except BaseException:
                self.destroy()
                raise
            return self

    def freeze(self) -> None:
        """Set the namespace's loopback down: every packet is dropped silently."""
        _ip("-n", self.netns, "link", "set", "lo", "down")

    def thaw(self) -> None:
        """Set the namespace's loopback up again."""
        _ip("-n", self.netns, "link", "set", "lo", "up")

    def _python_cmd(self, code: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, sys.executable, "-c", code]

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**os.environ, "PGCLUSTER_URL": self.url, **(env or {})}

    def run_python(
        self, code: str, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a snippet with this interpreter inside the namespace, cwd = repo root (for nxdata).

        ``$PGCLUSTER_URL`` holds the cluster URL. Raises subprocess.TimeoutExpired on timeout
        (the child is killed).
        """
        return subprocess.run(
            self._python_cmd(code),
            cwd=_REPO_ROOT,
            env=self._env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn_python(
        self, code: str, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start a Python snippet inside the namespace, with text pipes for stdin/stdout/stderr.

        For tests that step a client through phases (e.g. connect, freeze, query). The caller
        must wait for or kill it; destroy() kills whatever is left in the namespace.
        """
        return subprocess.Popen(
            self._python_cmd(code),
            cwd=_REPO_ROOT,
            env=self._env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def destroy(self) -> None:
        """Stop the cluster, kill what is left in the namespace and delete it. Idempotent."""
        with self._lock:
            try:
                self.cluster.destroy()
            finally:
                if self._created:
                    pids = _ip("netns", "pids", self.netns, check=False).stdout.split()
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError, ValueError):
                            os.kill(int(pid), 9)
                    _ip("netns", "del", self.netns, check=False)
                    self._created = False
                if self._watchdog is not None:
                    self._watchdog.disarm()
                    self._watchdog = None
                _unregister(self)

    def __enter__(self) -> Self:
        if not self._created:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


# -- PgBouncer ----------------------------------------------------------------------------------


def pgbouncer_binary() -> Path | None:
    """Debian's pgbouncer (``make install`` installs it when missing), or None."""
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


class PgBouncer:
    """A throwaway PgBouncer on 127.0.0.1 in front of a cluster (or any host:port), from
    Debian's package, in its own temp dir; it runs as the postgres OS user when root (PgBouncer
    refuses root). Every database name is passed through (``* = host=... port=...``).

    ``pool_mode`` ``"transaction"`` (default) hands a server connection to a client for one
    transaction only; ``pool_size`` server connections per database/user pair.
    """

    host = HOST

    def __init__(
        self,
        target: Cluster | tuple[str, int],
        *,
        pool_mode: str = "transaction",
        pool_size: int = 2,
        max_client_conn: int = 200,
        port: int | None = None,
    ) -> None:
        self._target = target
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = port if port is not None else free_port()
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: _Watchdog | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<PgBouncer {self.host}:{self.port} {self.pool_mode} pool_size={self.pool_size}>"

    @property
    def target(self) -> tuple[str, int]:
        if isinstance(self._target, Cluster):
            return self._target.host, self._target.port
        return self._target

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """libpq URL of `dbname` through this PgBouncer."""
        return (
            f"postgresql://{quote(user, safe='')}@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    @property
    def url(self) -> str:
        return self.dsn()

    def url_for(self, url: str) -> str:
        """`url` (of the target server) with host and port replaced by this PgBouncer's."""
        params = conninfo_to_dict(url)
        params.update(host=self.host, port=str(self.port))
        params.pop("hostaddr", None)
        return make_conninfo(**params)  # type: ignore[arg-type]

    def start(self) -> Self:
        binary = pgbouncer_binary()
        if binary is None:
            raise ClusterError("pgbouncer is not installed (make install installs it)")
        with self._lock:
            base = Path(tempfile.mkdtemp(prefix="nxdata-pgbouncer-"))
            self.base_dir = base
            _register(self)
            host, port = self.target
            (base / "userlist.txt").write_text('"postgres" ""\n')
            (base / "pgbouncer.ini").write_text(
                "[databases]\n"
                f"* = host={host} port={port}\n"
                "[pgbouncer]\n"
                f"listen_addr = {HOST}\n"
                f"listen_port = {self.port}\n"
                "unix_socket_dir =\n"
                "auth_type = trust\n"
                f"auth_file = {base / 'userlist.txt'}\n"
                f"pool_mode = {self.pool_mode}\n"
                f"default_pool_size = {self.pool_size}\n"
                "min_pool_size = 0\n"
                "reserve_pool_size = 0\n"
                f"max_client_conn = {self.max_client_conn}\n"
                "admin_users = postgres\n"
                f"logfile = {base / 'pgbouncer.log'}\n"
                f"pidfile = {base / 'pgbouncer.pid'}\n"
                "server_login_retry = 1\n"
                "query_wait_timeout = 30\n"
            )
            if _is_root():
                pw = pwd.getpwnam(_PG_USER)
                for path in (base, *base.iterdir()):
                    os.chown(path, pw.pw_uid, pw.pw_gid)
            # As the postgres user when root, by setuid in the child (not runuser: signals to
            # it would not reach pgbouncer, nor would the watchdog's kill).
            ids: dict[str, Any] = {}
            if _is_root():
                pw = pwd.getpwnam(_PG_USER)
                ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            self._proc = subprocess.Popen(
                [str(binary), str(base / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_clean_env(),
                start_new_session=True,
                **ids,
            )
            self._watchdog = _Watchdog(
                f"kill -9 {self._proc.pid} 2>/dev/null\nrm -rf {shlex.quote(str(base))}"
            )
            deadline = time.monotonic() + _START_TIMEOUT
            while True:
                try:
                    with socket.create_connection((HOST, self.port), timeout=0.5):
                        return self
                except OSError:
                    if self._proc.poll() is not None or time.monotonic() > deadline:
                        log = _tail(base / "pgbouncer.log", 20)
                        self.destroy()
                        raise ClusterError(f"pgbouncer did not start:\n{log}") from None
                    time.sleep(0.05)

    def log_text(self, lines: int = 50) -> str:
        return "" if self.base_dir is None else _tail(self.base_dir / "pgbouncer.log", lines)

    def destroy(self) -> None:
        """Stop PgBouncer (its server connections close with it) and remove its files."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None
            if self._watchdog is not None:
                self._watchdog.disarm()
                self._watchdog = None
            _unregister(self)

    def __enter__(self) -> Self:
        if self.base_dir is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
