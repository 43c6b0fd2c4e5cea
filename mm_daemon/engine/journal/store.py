"""The journal file: its lock, its connection, the writer thread, commits, failure, retention.

`JournalStore` knows tables and rows, not what they mean (that is `writer.Journal`). Buffered
rows go to a deque that the writer thread drains; `commit_now` commits them together with one
more write on the caller's thread. The connection is shared under a lock between the two.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from mm_daemon.engine.journal import schema
from mm_daemon.engine.journal.errors import JournalError, JournalLockedError
from mm_daemon.engine.journal.records import JournalObserver
from mm_daemon.log import get_logger

__all__ = ["JournalStore", "lock_path_of"]

log = get_logger(__name__)

_T = TypeVar("_T")
_NS = 1_000_000_000
_MAX_PENDING = 200_000  # rows waiting for the writer; past this the journal fails
_WAKE_AT = 2_000  # pending rows that wake the writer before its interval
_PRUNE_BATCH = 2_000
_PRUNE_INTERVAL_S = 60.0

_Record = tuple[str, tuple[Any, ...]]


def lock_path_of(path: Path) -> Path:
    """The sidecar file whose flock marks a journal as in use."""
    return path.with_name(path.name + ".lock")


class JournalStore:
    """An open, locked journal file with its writer thread."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock_fd: int,
        *,
        moved_to: Path | None,
        retention_s: float | None,
        flush_interval_s: float,
        observer: JournalObserver | None,
        on_failure: Callable[[str], None] | None,
        clock: Callable[[], int],
        fsync_each_commit: bool,
    ) -> None:
        self.path = path
        self.moved_to = moved_to
        self.conn = conn
        self._lock_fd = lock_fd
        self._retention_ns = None if retention_s is None else int(retention_s * _NS)
        self._flush_interval_s = flush_interval_s
        self._observer = observer
        self._on_failure = on_failure
        self._clock = clock
        self._pending: deque[_Record] = deque()
        self._db_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._failed_reason: str | None = None
        self._synchronous = "NORMAL"
        self._fsync_each_commit = fsync_each_commit
        self._unsynced = False  # committed to the WAL, not yet fsynced by a checkpoint
        self.dropped_records = 0  # buffered records lost to a failure
        self.max_seq = _max_seq(conn)
        self._writer = threading.Thread(target=self._run_writer, name="journal-writer", daemon=True)
        self._writer.start()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        fresh: bool = False,
        retention_s: float | None = 7 * 86_400.0,
        flush_interval_s: float = 0.25,
        max_bytes: int | None = None,
        integrity_check: bool = True,
        observer: JournalObserver | None = None,
        on_failure: Callable[[str], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
        fsync_each_commit: bool = False,
    ) -> JournalStore:
        """Lock, check and open the journal file (see `Journal.open`)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"journal folder {path.parent} cannot be created ({exc.strerror}): "
                "set state.dir to a writable folder"
            ) from None
        lock_fd = _acquire_lock(path)
        try:
            moved_to = _move_aside(path) if fresh else None
            version = schema.inspect(path, integrity_check=integrity_check)
            conn = _connect(path, max_bytes)
            if version is None:
                try:
                    schema.create(conn, clock())
                except sqlite3.Error as exc:
                    conn.close()
                    raise JournalError(
                        f"journal {path} cannot be created ({exc}): free space or fix the "
                        "folder's permissions"
                    ) from None
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(
            path,
            conn,
            lock_fd,
            moved_to=moved_to,
            retention_s=retention_s,
            flush_interval_s=flush_interval_s,
            observer=observer,
            on_failure=on_failure,
            clock=clock,
            fsync_each_commit=fsync_each_commit,
        )

    @property
    def failed_reason(self) -> str | None:
        """Why the journal stopped writing (it stays failed until the process restarts)."""
        return self._failed_reason

    @property
    def pending(self) -> int:
        """Buffered records the writer thread has not committed yet."""
        return len(self._pending)

    def flush(self) -> bool:
        """Commit everything buffered now, on the caller's thread; False when failed."""
        return self.commit_now(lambda _conn: True, durable=False) is not None

    def close(self) -> None:
        """Commit what is buffered, stop the writer, close the file and release the lock."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._writer.join()
        with self._db_lock:
            if self._failed_reason is None:
                self._write_batch(self._drain(), None, durable=True)
            self.conn.close()
        os.close(self._lock_fd)

    def buffer(self, table: str, params: tuple[Any, ...]) -> None:
        if self._failed_reason is not None:
            self.dropped_records += 1
            return
        pending = self._pending
        pending.append((table, params))
        size = len(pending)
        if size >= _WAKE_AT and size % _WAKE_AT == 0:
            if size >= _MAX_PENDING:
                self._fail(f"journal writer is {size} records behind ({self.path})")
            else:
                self._wake.set()

    def _drain(self) -> list[_Record]:
        pending = self._pending
        batch = []
        while pending:  # popleft is atomic; the loop thread may append meanwhile
            batch.append(pending.popleft())
        return batch

    def commit_now(
        self, write: Callable[[sqlite3.Connection], Any], *, durable: bool = True
    ) -> Any:
        """Commit the buffered records and `write` in one transaction, on the caller's thread.

        Returns what `write` returned, or None (with the journal failed) when it could not.
        """
        with self._db_lock:
            if self._failed_reason is not None:
                return None
            return self._write_batch(self._drain(), write, durable=durable)

    def read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `query` on the connection, between commits."""
        with self._db_lock:
            return query(self.conn)

    def _write_batch(
        self,
        batch: list[_Record],
        write: Callable[[sqlite3.Connection], Any] | None,
        *,
        durable: bool,
    ) -> Any:
        """Under `_db_lock`. Returns `write`'s result (True without one), None on failure."""
        if not batch and write is None:
            return True
        conn = self.conn
        started = time.perf_counter()
        try:
            self._begin(durable=durable)
            for table, group in itertools.groupby(batch, key=itemgetter(0)):
                conn.executemany(schema.INSERT[table], [params for _, params in group])
            result = True if write is None else write(conn)
            conn.execute("COMMIT")
            self._unsynced = True
        except sqlite3.Error as exc:
            self._rollback()
            self._fail(f"journal write failed: {exc} ({self.path})")
            return None
        if self._observer is not None:
            self._observer.journal_committed(
                len(batch) + (write is not None), time.perf_counter() - started
            )
        return result

    def _begin(self, *, durable: bool) -> None:
        """Start a write transaction (one that fsyncs the WAL at its commit, for a durable
        record with `fsync_each_commit`)."""
        synchronous = "FULL" if durable and self._fsync_each_commit else "NORMAL"
        if synchronous != self._synchronous:
            self.conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._synchronous = synchronous
        self.conn.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("journal_rollback_failed", path=str(self.path))

    def _fail(self, reason: str) -> None:
        if self._failed_reason is not None:
            return
        self._failed_reason = reason
        self.dropped_records += len(self._drain())
        log.error("journal_failed", reason=reason)
        if self._on_failure is not None:
            try:
                self._on_failure(reason)
            except Exception:  # the journal's failure path must not fail itself
                log.exception("journal_failure_callback_failed")

    def _run_writer(self) -> None:
        checkpoint_conn: sqlite3.Connection | None = None
        next_prune = time.monotonic() + _PRUNE_INTERVAL_S
        try:
            checkpoint_conn = sqlite3.connect(self.path, isolation_level=None)
            while True:
                self._wake.wait(self._flush_interval_s)
                self._wake.clear()
                stopping = self._stopping
                if self._pending and self._failed_reason is None:
                    with self._db_lock:
                        if self._failed_reason is None:
                            self._write_batch(self._drain(), None, durable=False)
                if stopping or self._failed_reason is not None:
                    break
                if self._unsynced:
                    # Copying the WAL into the file fsyncs the WAL first: what was committed
                    # before now survives a power cut. A second connection, so no commit
                    # waits for the disk.
                    self._unsynced = False
                    checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                now = time.monotonic()
                if now >= next_prune and self._retention_ns is not None:
                    self.prune()
                    next_prune = now + _PRUNE_INTERVAL_S
        except Exception as exc:  # noqa: BLE001  whatever stops the writer fails the journal
            self._fail(f"journal writer stopped: {exc!r} ({self.path})")
        finally:
            if checkpoint_conn is not None:
                checkpoint_conn.close()

    def prune(self) -> int:
        """Delete records older than the retention, in batches; return how many went."""
        if self._retention_ns is None:
            return 0
        cutoff = self._clock() - self._retention_ns
        removed = 0
        for statement in schema.PRUNE:
            while not self._stopping:
                with self._db_lock:
                    if self._failed_reason is not None:
                        return removed
                    count = self._write_batch(
                        [], _deleter(statement, cutoff, _PRUNE_BATCH), durable=False
                    )
                if not count:
                    break
                removed += count
                if count < _PRUNE_BATCH:
                    break
        return removed


def _max_seq(conn: sqlite3.Connection) -> int:
    query = " UNION ALL ".join(f"SELECT max(seq) FROM {table}" for table in schema.TABLES_WITH_SEQ)
    values: Iterable[int | None] = (row[0] for row in conn.execute(query))
    return max((value for value in values if value is not None), default=0)


def _connect(path: Path, max_bytes: int | None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # The writer thread checkpoints on its own connection, off the committing path.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA busy_timeout = 5000")
        if max_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size):d}")
    except sqlite3.Error as exc:
        conn.close()
        raise JournalError(f"journal {path} cannot be opened for writing: {exc}") from None
    return conn


def _acquire_lock(path: Path) -> int:
    lock_path = lock_path_of(path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise JournalError(
            f"journal lock {lock_path} cannot be opened ({exc.strerror}): "
            "set state.dir to a writable folder"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalLockedError(
            f"journal {path} is in use by another mm-daemon process (pid {holder}): stop it "
            "first, or give this daemon its own state.dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def _move_aside(path: Path) -> Path | None:
    """Rename the journal and its -wal/-shm to a timestamped name; None when there is none."""
    if not path.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in itertools.count():
        suffix = "" if attempt == 0 else f"-{attempt}"
        target = path.with_name(f"{path.stem}.{stamp}{suffix}{path.suffix}")
        if not any(Path(f"{target}{side}").exists() for side in ("", "-wal", "-shm")):
            break
    for side in ("-wal", "-shm", ""):  # the database last: never a file without its WAL
        source = Path(f"{path}{side}")
        if source.exists():
            source.rename(f"{target}{side}")
    return target


def _deleter(statement: str, cutoff: int, batch: int) -> Callable[[sqlite3.Connection], int]:
    def delete(conn: sqlite3.Connection) -> int:
        return conn.execute(statement, (cutoff, batch)).rowcount

    return delete
