"""The journal: one append-only SQLite file per daemon instance, and restart recovery from it.

Design (what is durable when):
- Stdlib `sqlite3` in WAL mode. One connection, shared under a lock by the caller (the event
  loop) and a writer thread; the writer thread's own second connection checkpoints the WAL
  into the file, so no commit waits for the disk's fsync.
- Buffered records (orders, cancels and status changes, hedge outcomes, inventory-limit risk
  changes, checkpoints, 1 s snapshots, completed markouts) are tuples appended to a deque on
  the caller's thread (about a microsecond, no lock, no I/O: all a book update or a requote
  ever does) and
  committed by the writer thread every `flush_interval_s` (0.25 s), or sooner past 2,000.
- Durable records commit on the caller's thread, together with everything buffered before
  them, and the call returns after the commit: a paper fill (`record_fill`: committed, then
  counted; a trade id journaled already is refused, so a fill never counts twice), a hedge
  decision (before its order is sent), a halt and any operator risk change, a control
  action, a funding payment, a run's start and end.
- A live fill is buffered instead (`kept_by_venue`): the venue's trade history holds it and a
  start reads back what the journal lacks, so it may count before its commit. Its trade id is
  remembered at once, so a copy of it (a reconnect's trade query) still counts once. On the
  reaction benchmark's filling scenario the synchronous commit was p50 0.95 ms between the
  fill and the requote it causes.
- Committed means written to the WAL: from then on it survives a kill of the process
  (SIGKILL, the OOM killer). Within one flush interval the writer thread's checkpoint fsyncs
  the WAL, and from then on it survives a power cut or kernel crash too. `fsync_each_commit`
  fsyncs at every durable commit instead, and the caller waits for the disk (see the figures).
- A SIGKILL at the worst instant loses the buffered records of the last flush interval:
  snapshot rows, order status changes, live fills, the latest checkpoint (recovery then books
  more fills again from an older one). Never a paper fill that counted, a halt or a hedge
  decision; the live fills come back from the venue. A power
  cut or kernel crash can also take what was committed in the last flush interval, as a
  whole: SQLite replays the WAL up to its last intact commit, so the journal is that of a
  moment earlier. Live, nothing that matters is lost either way: the venue's open orders and
  trade history are read back at start and the missing fills booked. In paper mode the
  journal is the truth: every paper fill that counted is in it (a power cut: as if the
  process had died a moment earlier), and a paper order's filled amount is taken from its
  journaled fills when its last status was lost.
- A failing write (disk full, `max_bytes` reached) never raises into the caller: the journal
  flips to failed (`failed_reason`), calls `on_failure(reason)` once (the daemon halts quoting
  with the reason `journal`), drops what it cannot write and stays failed until a restart.
  `record_fill` then answers UNJOURNALED: count the fill, it is not durable.
- Why not an async wrapper (aiosqlite): the fill and hedge handlers are synchronous and must
  not count a fill before its commit; awaiting one would split them, and every call would hop
  to its thread and back. Measured (bench/bench_journal.py, one run, same pragmas): a
  single-row commit to the WAL costs p50 34 us through stdlib sqlite3 and 305 us through
  aiosqlite (9x); fsynced, 365 us and 619 us. `record_fill` itself: p50 209 us (p99 4.6 ms
  on a shared, busy disk), 641 us with `fsync_each_commit`.
- A second process on the same journal is refused: an exclusive `flock` on `<file>.lock`,
  held while the journal is open. A journal that is corrupt, unreadable, not a journal or of
  a newer schema is refused (JournalError: one line naming the file and what to do) after
  read-only checks that leave the file byte for byte as it was. `fresh` moves an old journal
  aside under a timestamped name; nothing is ever deleted except by the retention, which
  prunes, in batches, snapshots, finished orders' history and superseded checkpoints older
  than `retention_s`.
- Exact restart: a fill is journaled with the entry marks the ledger measured it from, so
  booking it again after a checkpoint gives exactly the ledger it gave; a checkpoint is
  `Ledger.export_state` (integers as decimal strings) and `RiskGate.export_state`.
"""

from mm_daemon.engine.journal.errors import (
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalSchemaError,
)
from mm_daemon.engine.journal.records import (
    Baseline,
    Checkpoint,
    ControlAction,
    FillOutcome,
    FundingPayment,
    HedgeDecision,
    HedgeOutcome,
    InstrumentInfo,
    JournaledFill,
    JournaledMarkout,
    JournalObserver,
    OpenOrder,
    RiskChange,
    RunInfo,
    Snapshot,
    TradeMark,
)
from mm_daemon.engine.journal.recovery import (
    MarketRecovery,
    Recovery,
    RunSeries,
    list_runs,
    load_run_series,
)
from mm_daemon.engine.journal.schema import SCHEMA_VERSION
from mm_daemon.engine.journal.store import lock_path_of
from mm_daemon.engine.journal.writer import Journal

__all__ = [
    "SCHEMA_VERSION",
    "Baseline",
    "Checkpoint",
    "ControlAction",
    "FillOutcome",
    "FundingPayment",
    "HedgeDecision",
    "HedgeOutcome",
    "InstrumentInfo",
    "Journal",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "JournalObserver",
    "JournalSchemaError",
    "JournaledFill",
    "JournaledMarkout",
    "MarketRecovery",
    "OpenOrder",
    "Recovery",
    "RiskChange",
    "RunInfo",
    "RunSeries",
    "Snapshot",
    "TradeMark",
    "list_runs",
    "load_run_series",
    "lock_path_of",
]
