"""The journal's tables, and the check of an existing file before anything writes to it.

Every record table has `seq INTEGER PRIMARY KEY`: one sequence across all tables, assigned
when the record is made, so the order of events survives batching. Orders are kept in ticks and
lots; `instruments` (per run) holds what converts them. `open_orders` is the one table kept
current rather than appended to (a trigger on `orders` maintains it): it is the short list a
restart reads instead of scanning the order history.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from mm_daemon.engine.journal.errors import JournalCorruptError, JournalSchemaError

__all__ = [
    "INSERT",
    "PRUNE",
    "SCHEMA_VERSION",
    "TABLES_WITH_SEQ",
    "connect_read_only",
    "create",
    "inspect",
]

SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"
TERMINAL_STATUSES = ("filled", "cancelled", "rejected", "expired")
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in TERMINAL_STATUSES)

TABLES_WITH_SEQ = (
    "orders",
    "fills",
    "hedges",
    "risk_states",
    "control_actions",
    "funding",
    "checkpoints",
    "snapshots",
)

_DDL = f"""
CREATE TABLE schema_version (
    version INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER,
    end_reason TEXT,
    config_yaml TEXT NOT NULL,
    summary_json TEXT
);
CREATE TABLE instruments (
    run_id INTEGER NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    exchange_symbol TEXT NOT NULL,
    kind TEXT NOT NULL,
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    tick_size REAL NOT NULL,
    lot_size REAL NOT NULL,
    contract_size_base REAL NOT NULL,
    PRIMARY KEY (run_id, venue, symbol)
);
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    action TEXT NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    exchange_order_id TEXT,
    side INTEGER,
    order_type TEXT,
    price_ticks INTEGER,
    size_lots INTEGER,
    filled_lots INTEGER,
    status TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX orders_by_ts ON orders (ts_ns);
CREATE INDEX orders_by_client ON orders (venue, symbol, client_order_id);
CREATE TABLE open_orders (
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    market TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    exchange_order_id TEXT,
    side INTEGER,
    order_type TEXT,
    price_ticks INTEGER,
    size_lots INTEGER,
    filled_lots INTEGER,
    status TEXT NOT NULL,
    PRIMARY KEY (venue, symbol, client_order_id)
) WITHOUT ROWID;
CREATE TRIGGER orders_keep_open_orders AFTER INSERT ON orders
BEGIN
    DELETE FROM open_orders
    WHERE NEW.status IN ({_TERMINAL_SQL})
        AND venue = NEW.venue AND symbol = NEW.symbol
        AND client_order_id = NEW.client_order_id;
    INSERT INTO open_orders SELECT
        NEW.venue, NEW.symbol, NEW.client_order_id, NEW.market, NEW.run_id, NEW.seq, NEW.ts_ns,
        NEW.exchange_order_id, NEW.side, NEW.order_type, NEW.price_ticks, NEW.size_lots,
        NEW.filled_lots, NEW.status
    WHERE NEW.status NOT IN ({_TERMINAL_SQL})
    ON CONFLICT (venue, symbol, client_order_id) DO UPDATE SET
        market = excluded.market,
        run_id = excluded.run_id,
        seq = excluded.seq,
        ts_ns = excluded.ts_ns,
        exchange_order_id = coalesce(excluded.exchange_order_id, exchange_order_id),
        side = coalesce(excluded.side, side),
        order_type = coalesce(excluded.order_type, order_type),
        price_ticks = coalesce(excluded.price_ticks, price_ticks),
        size_lots = coalesce(excluded.size_lots, size_lots),
        filled_lots = coalesce(excluded.filled_lots, filled_lots),
        status = excluded.status;
END;
CREATE TABLE fills (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    trade_number INTEGER,
    client_order_id TEXT NOT NULL,
    exchange_order_id TEXT NOT NULL,
    side INTEGER NOT NULL,
    price_ticks INTEGER NOT NULL,
    size_lots INTEGER NOT NULL,
    price REAL NOT NULL,
    size REAL NOT NULL,
    fee REAL NOT NULL,
    fee_asset TEXT NOT NULL,
    liquidity TEXT NOT NULL,
    is_hedge INTEGER NOT NULL,
    entry_nanos TEXT NOT NULL,
    entry_reference_nanos TEXT NOT NULL,
    recovered INTEGER NOT NULL,
    ts_exchange_ns INTEGER NOT NULL,
    ts_local_ns INTEGER NOT NULL,
    UNIQUE (venue, symbol, trade_id)
);
CREATE INDEX fills_by_market ON fills (market, seq);
CREATE INDEX fills_by_order ON fills (venue, symbol, client_order_id);
CREATE INDEX fills_by_run ON fills (run_id);
CREATE INDEX fills_by_ts ON fills (ts_local_ns);
CREATE INDEX fills_by_trade_number ON fills (venue, symbol, trade_number);
CREATE TABLE hedges (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    side INTEGER,
    size_lots INTEGER,
    price_ticks INTEGER,
    fair_value REAL,
    reference_fair_value REAL,
    exposure_change_base REAL,
    status TEXT,
    filled_lots INTEGER,
    avg_price REAL,
    slippage_bps REAL,
    reason TEXT
);
CREATE INDEX hedges_by_market ON hedges (market, kind, seq);
CREATE INDEX hedges_by_ts ON hedges (ts_ns);
CREATE TABLE risk_states (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT,
    ts_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX risk_states_by_market ON risk_states (market, seq);
CREATE TABLE control_actions (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    action TEXT NOT NULL,
    caller TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE funding (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    funding_time_ns INTEGER NOT NULL,
    amount REAL NOT NULL,
    asset TEXT NOT NULL,
    rate REAL,
    position_base REAL,
    UNIQUE (venue, symbol, funding_time_ns)
);
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT,
    ts_ns INTEGER NOT NULL,
    ledger_json TEXT,
    risk_json TEXT
);
CREATE INDEX checkpoints_by_market ON checkpoints (market, seq);
CREATE TABLE snapshots (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    market TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    fair_value REAL,
    best_bid REAL,
    best_ask REAL,
    quote_bid REAL,
    quote_ask REAL,
    position_base REAL NOT NULL,
    net_exposure_base REAL NOT NULL,
    pnl_total REAL NOT NULL,
    pnl_spread_capture REAL NOT NULL,
    pnl_fees REAL NOT NULL,
    pnl_inventory REAL NOT NULL,
    pnl_hedge_cost REAL NOT NULL,
    pnl_basis REAL NOT NULL,
    pnl_funding REAL NOT NULL,
    drawdown_peak REAL,
    risk_state TEXT NOT NULL,
    paused INTEGER NOT NULL
);
CREATE TABLE baselines (
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    lots INTEGER NOT NULL,
    last_trade_id TEXT NOT NULL,
    PRIMARY KEY (venue, symbol)
) WITHOUT ROWID;
CREATE INDEX snapshots_by_ts ON snapshots (ts_ns);
CREATE INDEX snapshots_by_market ON snapshots (market, ts_ns);
"""


INSERT = {
    "instruments": (
        "INSERT OR REPLACE INTO instruments (run_id, venue, symbol, exchange_symbol, kind, base, "
        "quote, tick_size, lot_size, contract_size_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "orders": (
        "INSERT INTO orders (seq, run_id, market, ts_ns, action, venue, symbol, "
        "client_order_id, exchange_order_id, side, order_type, price_ticks, size_lots, "
        "filled_lots, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "fills": (
        "INSERT OR IGNORE INTO fills (seq, run_id, market, venue, symbol, trade_id, trade_number, "
        "client_order_id, exchange_order_id, side, price_ticks, size_lots, price, size, fee, "
        "fee_asset, liquidity, is_hedge, entry_nanos, entry_reference_nanos, recovered, "
        "ts_exchange_ns, ts_local_ns) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "hedges": (
        "INSERT INTO hedges (seq, run_id, market, ts_ns, kind, venue, symbol, client_order_id, "
        "side, size_lots, price_ticks, fair_value, reference_fair_value, exposure_change_base, "
        "status, filled_lots, avg_price, slippage_bps, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "risk_states": (
        "INSERT INTO risk_states (seq, run_id, market, ts_ns, state, reason, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
    "control_actions": (
        "INSERT INTO control_actions (seq, run_id, ts_ns, action, caller, result, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
    "funding": (
        "INSERT OR IGNORE INTO funding (seq, run_id, market, venue, symbol, funding_time_ns, "
        "amount, asset, rate, position_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "checkpoints": (
        "INSERT INTO checkpoints (seq, run_id, market, ts_ns, ledger_json, risk_json) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "baselines": (
        "INSERT OR IGNORE INTO baselines (venue, symbol, run_id, ts_ns, lots, last_trade_id) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "snapshots": (
        "INSERT INTO snapshots (seq, run_id, market, ts_ns, fair_value, best_bid, best_ask, "
        "quote_bid, quote_ask, position_base, net_exposure_base, pnl_total, "
        "pnl_spread_capture, pnl_fees, pnl_inventory, pnl_hedge_cost, pnl_basis, pnl_funding, "
        "drawdown_peak, risk_state, paused) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
}

PRUNE = (
    "DELETE FROM snapshots WHERE seq IN (SELECT seq FROM snapshots WHERE ts_ns < ? LIMIT ?)",
    # Rows of finished orders only: an order still open keeps its history.
    "DELETE FROM orders WHERE seq IN (SELECT o.seq FROM orders AS o WHERE o.ts_ns < ? "
    "AND NOT EXISTS (SELECT 1 FROM open_orders AS p WHERE p.venue = o.venue "
    "AND p.symbol = o.symbol AND p.client_order_id = o.client_order_id) LIMIT ?)",
    # Recovery reads the latest checkpoint of each market: that one always stays.
    "DELETE FROM checkpoints WHERE seq IN (SELECT seq FROM checkpoints WHERE ts_ns < ? "
    "AND seq NOT IN (SELECT max(seq) FROM checkpoints GROUP BY market) LIMIT ?)",
)


def create(conn: sqlite3.Connection, now_ns: int) -> None:
    """Lay out a new journal in one transaction (the caller's connection is in autocommit)."""
    script = (
        f"BEGIN IMMEDIATE;{_DDL}"
        f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION:d}, {int(now_ns):d});COMMIT;"
    )
    try:
        conn.executescript(script)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the database or its WAL (nor checkpoint on close).

    Without a WAL beside it the file is opened as immutable, so not even the -wal and -shm
    files a WAL-mode database grows on a plain read are created.
    """
    resolved = path.resolve()
    wal = resolved.with_name(resolved.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(
        f"file:{quote(str(resolved))}?{flags}", uri=True, check_same_thread=False
    )


def inspect(path: Path, *, integrity_check: bool = True) -> int | None:
    """The schema version of the journal at `path`, None for a new (absent or empty) one.

    Reads only: the file is left byte for byte as it was. Raises JournalCorruptError (not a
    journal, unreadable, or failing SQLite's quick_check) or JournalSchemaError.
    """
    if not path.exists():
        return None
    if not path.is_file():
        raise JournalCorruptError(
            f"journal {path} is not a file: move it away or give another state.dir"
        )
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise JournalCorruptError(
            f"journal {path} cannot be read ({exc.strerror}): fix its permissions, "
            "or start a new journal with --fresh"
        ) from None
    if header and header != SQLITE_HEADER:
        raise _corrupt(path, "not an SQLite database")
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as exc:
        raise _corrupt(path, str(exc)) from None
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not tables:
            return None
        if "schema_version" not in tables:
            raise _corrupt(path, "an SQLite database but not a journal")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if not isinstance(version, int):
            raise _corrupt(path, "its schema version is missing")
        if version > SCHEMA_VERSION:
            raise JournalSchemaError(
                f"journal {path} has schema version {version}, written by a newer mm-daemon "
                f"(this one reads version {SCHEMA_VERSION}): run the newer version, or start "
                "a new journal with --fresh (the old file is kept)"
            )
        if version < SCHEMA_VERSION:
            raise _corrupt(path, f"schema version {version} predates any this version reads")
        if integrity_check:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise _corrupt(path, "; ".join(problems))
    except sqlite3.Error as exc:
        raise _corrupt(path, str(exc)) from None
    else:
        return version
    finally:
        conn.close()


def _corrupt(path: Path, what: str) -> JournalCorruptError:
    what = " ".join(what.split())  # SQLite's reports span lines; the error is one
    return JournalCorruptError(
        f"journal {path} is unusable ({what}): move it away or start a new journal with "
        "--fresh (the old file is kept)"
    )
