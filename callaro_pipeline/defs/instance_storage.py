"""The Dagster instance's SQLite storage of a home (`CALLARO_HOME/dagster`): Dagster's own, with one SQLAlchemy
engine per database file instead of one per connection.

Dagster's SQLite storages build a new engine for every connection they open (dagster 1.13): each pays
`create_engine`, the dialect's first-connect checks, and compiles every statement anew, because SQLAlchemy's
compiled-statement cache lives on the engine. An import stores ~55 events over ~120 connections, so that is
~0.5 CPU-s of a 2-row `callaro import`. Here an engine is kept per file (a few dozen at most, least recently used
dropped); they keep NullPool, so no connection outlives its use and other processes see the same locking as
with Dagster's classes. The file layout under DAGSTER_HOME is Dagster's default storage's, so a home written by either
reads with the other. A shared (Postgres) instance is configured by deploy/dagster.yaml and does not use this.
It subclasses Dagster's storage classes and overrides their connection methods (dagster is pinned below 1.14);
test_dagster_project.py reads a home back with Dagster's own classes, so a change of theirs shows there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

# Per-run event databases come and go; an engine without pooled connections holds only its compiled statements.
_ENGINES_KEPT = 32


@functools.lru_cache(maxsize=_ENGINES_KEPT)
def reused_engine(conn_string: str) -> Engine:
    return create_engine(conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class EventLogStorageReusingEngines(SqliteEventLogStorage):
    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> SqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = reused_engine(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as conn:
                yield conn

    def has_table(self, table_name: str) -> bool:
        engine = reused_engine(self.conn_string_for_shard(INDEX_SHARD_NAME))
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))


class RunStorageReusingEngines(SqliteRunStorage):
    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(reused_engine(self._conn_string)) as conn:
            yield conn


class ScheduleStorageReusingEngines(SqliteScheduleStorage):
    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(reused_engine(self._conn_string)) as conn:
            yield conn


class HomeSqliteStorage(DagsterSqliteStorage):
    """`storage: custom:` in a home's dagster.yaml, with `base_dir` the DAGSTER_HOME folder: Dagster's default
    storage keeps its databases there (history/, schedules/)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # DagsterSqliteStorage.__init__ would first build Dagster's three storages (each checks its schema
        # revision): the same layout is built here once, with the classes above.
        self.base_dir = base_dir
        self._run_storage = RunStorageReusingEngines.from_local(os.path.join(base_dir, "history", ""))
        self._event_log_storage = EventLogStorageReusingEngines(os.path.join(base_dir, "history", "runs", ""))
        self._schedule_storage = ScheduleStorageReusingEngines.from_local(os.path.join(base_dir, "schedules"))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> HomeSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
