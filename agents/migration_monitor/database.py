"""A small portable layer over SQLite and PostgreSQL for the ledger.

SQL is written once with `?` placeholders; for PostgreSQL they become `%s`.
Transactions are serialised by a lock: the monitor is a single active
consumer, and its handlers' transactions are short.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Database", "Transaction", "open_database"]


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database:
    def __init__(self, dialect: str, connection: Any) -> None:
        self.dialect = dialect
        self._connection = connection
        self._lock = threading.RLock()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            if self.dialect == "sqlite":
                self._connection.execute("BEGIN IMMEDIATE")
                cursor = self._connection.cursor()
            else:
                cursor = self._connection.cursor()
            try:
                yield _Tx(self, cursor)
            except BaseException:
                self._connection.rollback() if self.dialect == "postgresql" else self._connection.execute(
                    "ROLLBACK"
                )
                raise
            else:
                self._connection.commit() if self.dialect == "postgresql" else self._connection.execute(
                    "COMMIT"
                )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _Tx:
    def __init__(self, database: Database, cursor: Any) -> None:
        self._db = database
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._db._sql(sql), tuple(params))
        if self._cursor.description is None:
            return []
        return [tuple(row) for row in self._cursor.fetchall()]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(self._db._sql(sql), [tuple(r) for r in rows])


def open_database(url: str) -> Database:
    """`sqlite:///path/to/ledger.db` or `postgresql://user@host/db`."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=10000")
        return Database("sqlite", connection)
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        return Database("postgresql", psycopg.connect(url, autocommit=False))
    raise ValueError(f"unsupported ledger URL {url!r}: use sqlite:///<path> or postgresql://...")
