"""The warehouse as a Dagster resource: a DuckDB file (local) or BigQuery (gcp).

Long on purpose: the two backends of one role (`Warehouse`), DuckDB and BigQuery, side by side, so that
each method is read for both backends at once.

SQL is written once, in BigQuery Standard SQL with unqualified table names: BigQuery resolves them
through the job's default dataset; DuckDB runs the same text transpiled by sqlglot.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import duckdb
import pandas as pd
import sqlglot
import tenacity
from pydantic import Field, PrivateAttr

from lead_scoring.warehouse.tables import TABLES, TableSpec, tables_in, views

logger = logging.getLogger(__name__)


class Warehouse(dg.ConfigurableResource):
    """Run BigQuery-dialect SQL and append frames to the project's tables."""

    @contextmanager
    def held(self) -> Iterator[None]:
        """Every call inside on one connection, where the warehouse has one to hold (a worker's batch)."""
        yield

    def ensure_tables(self) -> None:
        """Create the missing tables, and add the columns a table made by an older version lacks (an existing
        warehouse keeps working after an upgrade: columns are only ever added)."""
        raise NotImplementedError

    def query(self, sql: str, params: Optional[dict[str, Any]] = None) -> pd.DataFrame:
        raise NotImplementedError

    def append(self, table: str, frame: pd.DataFrame) -> int:
        raise NotImplementedError

    def execute(self, sql: str, params: Optional[dict[str, Any]] = None) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @property
    def dialect(self) -> str:
        raise NotImplementedError

    def upsert(self, table: str, frame: pd.DataFrame, key: str, newer: Optional[str] = None) -> int:
        """MERGE `frame` into `table` by `key`: insert new keys, update existing ones.

        With `newer` (a timestamp column), an existing row is only replaced by a row at least as new,
        so replaying an old message never overwrites a fresher value (idempotent, order-insensitive).
        Returns the number of rows offered (after de-duplicating the batch by key).
        """
        raise NotImplementedError

    def insert_new(self, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> int:
        """Append only the rows whose `key` columns are not in `table` yet (idempotent append).

        Returns the number of rows actually inserted.
        """
        raise NotImplementedError

    def purge_deleted(self) -> None:
        """After a DELETE that must leave nothing behind (an erasure): drop the deleted rows' storage where the
        warehouse keeps it. BigQuery does this itself (time travel aside, docs/lifecycle.md): nothing to do."""


def _spec(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"unknown warehouse table {table!r}; known: {', '.join(TABLES)}") from None


def _merge_sql(table: str, source: str, spec: TableSpec, key: str, newer: Optional[str], q: str) -> str:
    cols = spec.column_names
    sets = ", ".join(f"{q}{c}{q} = s.{q}{c}{q}" for c in cols if c != key)
    cond = f" AND s.{q}{newer}{q} >= t.{q}{newer}{q}" if newer else ""
    return (
        f"MERGE INTO {table} AS t USING {source} AS s ON t.{q}{key}{q} = s.{q}{key}{q} "
        f"WHEN MATCHED{cond} THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(q + c + q for c in cols)}) "
        f"VALUES ({', '.join('s.' + q + c + q for c in cols)})"
    )


def _insert_new_sql(table: str, source: str, spec: TableSpec, key: tuple[str, ...], q: str) -> str:
    cols = ", ".join(f"{q}{c}{q}" for c in spec.column_names)
    # NULL-safe key comparison: a null LastModifiedDate or Id must still match itself.
    match = " AND ".join(f"t.{q}{k}{q} IS NOT DISTINCT FROM s.{q}{k}{q}" for k in key)
    return (
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source} AS s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match})"
    )


def _latest_per_key(frame: pd.DataFrame, key: str, newer: Optional[str]) -> pd.DataFrame:
    if newer and newer in frame.columns:
        frame = frame.sort_values(newer, kind="stable", na_position="first")
    return frame.drop_duplicates(subset=[key], keep="last")


def conform(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Columns in table order, missing ones as null, extras dropped, timestamps parsed as UTC."""
    out = pd.DataFrame(index=frame.index)
    for name, ftype in spec.columns:
        col = frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if ftype.value == "timestamp":
            col = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
        elif ftype.value in ("number",):
            col = pd.to_numeric(col, errors="coerce").astype(float)
        elif ftype.value == "int":
            col = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif ftype.value == "boolean":
            col = (
                col.astype(object)
                .where(col.notna(), None)
                .map(lambda v: None if v is None else bool(v))
                .astype("boolean")
            )
        else:
            col = col.astype(object).where(col.notna(), None)
        out[name] = col
    return out


# One lock per database file for the whole process. DuckDB refuses a second in-process attach of a file that is
# open ("Unique file handle conflict"), and Dagster hands each run its own copy of a resource, so a per-instance
# lock let an asset's copy and a worker's instance open the same file at once.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


# How long a connect waits while another process holds the DuckDB file (a long asset query, a backup).
LOCK_WAIT_S = 120.0


def _file_lock(path: str) -> threading.Lock:
    key = os.path.realpath(path)
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


@functools.lru_cache(maxsize=512)
def _to_duckdb(sql: str) -> str:
    """BigQuery Standard SQL as DuckDB runs it. Cached: the workers run the same few statements every batch, and
    sqlglot took ~3 ms of a ~10 ms erasure-register lookup."""
    return ";\n".join(sqlglot.transpile(sql, read="bigquery", write="duckdb"))


class DuckDBWarehouse(Warehouse):
    """A DuckDB file: the local profile's warehouse."""

    path: str = Field(description="DuckDB database file")

    _columns_checked: set[str] = PrivateAttr(default_factory=set)  # tables whose columns this process checked
    _tables_ensured: bool = PrivateAttr(default=False)
    _local: threading.local = PrivateAttr(default_factory=threading.local)  # the connection held() holds

    @property
    def dialect(self) -> str:
        return "duckdb"

    def describe(self) -> str:
        return f"duckdb://{self.path}"

    @contextmanager
    def held(self) -> Iterator[None]:
        """One connection (and one turn at the file's lock) for every call of this thread inside: a worker's
        batch took six turns, and the other worker, polling for the lock, waited behind all of them."""
        if getattr(self._local, "con", None) is not None:
            yield
            return
        with self.connect() as con:
            self._local.con = con
            try:
                yield
            finally:
                self._local.con = None

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A short-lived connection: DuckDB allows one writing process, so workers and assets take turns.

        While another process holds the file's lock, the connect is retried every 5-30 ms for up to
        LOCK_WAIT_S. (dagster-duckdb's `get_connection` doubles its sleep from 0.1 s: a worker that met the lock
        slept 0.1 + 0.2 + ... + 1.6 s while the other side held it for milliseconds; benchmarks/user_flow.py's CRM
        row p99 went from 8.3 to 3.1 s at 200 leads/s without it.)"""
        held = getattr(self._local, "con", None)
        if held is not None:  # inside held(): this thread's connection, closed when held() ends
            yield held
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.path):
            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(duckdb.IOException),
                wait=tenacity.wait_random(0.005, 0.03),
                stop=tenacity.stop_after_delay(LOCK_WAIT_S),
                reraise=True,
            )
            con = retrying(duckdb.connect, database=self.path, config={"custom_user_agent": "dagster"})
            try:
                yield con
            finally:
                con.close()  # also when the body raised: the file lock must not wait for garbage collection

    def ensure_tables(self) -> None:
        with self.connect() as con:
            for spec in TABLES.values():
                self._ensure(con, spec)
        self._tables_ensured = True

    def _ensure_once(self) -> None:
        """The tables, once per instance before its first query: every worker query used to open the file twice
        (this check, then the query), each time taking the lock the other worker waits for."""
        if not self._tables_ensured:
            self.ensure_tables()

    def _ensure(self, con: Any, spec: TableSpec) -> None:
        """CREATE TABLE IF NOT EXISTS, then (once per process and table) add the columns an older file lacks."""
        con.execute(spec.ddl("duckdb"))
        if spec.name in self._columns_checked:
            return
        existing = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'",
                [spec.name],
            ).fetchall()
        }
        alters = spec.add_columns_ddl(existing, "duckdb")
        for alter in alters:
            con.execute(alter)
        if alters:
            logger.info(
                "warehouse %s: added %s to %s",
                self.path,
                ", ".join(c for c, _ in spec.columns if c not in existing),
                spec.name,
            )
        self._columns_checked.add(spec.name)

    def transpile(self, sql: str) -> str:
        return _to_duckdb(sql)

    def query(self, sql: str, params: Optional[dict[str, Any]] = None) -> pd.DataFrame:
        self._ensure_once()
        with self.connect() as con:
            return con.execute(self.transpile(sql), params or {}).df()

    def execute(self, sql: str, params: Optional[dict[str, Any]] = None) -> None:
        self._ensure_once()
        with self.connect() as con:
            con.execute(self.transpile(sql), params or {})

    def append(self, table: str, frame: pd.DataFrame) -> int:
        spec = _spec(table)
        if frame.empty:
            return 0
        self.ensure_tables()
        batch = conform(frame, spec)
        with self.connect() as con:
            con.register("_batch", batch)
            cols = ", ".join(f'"{c}"' for c, _ in spec.columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _batch")
            con.unregister("_batch")
        return len(batch)

    def upsert(self, table: str, frame: pd.DataFrame, key: str, newer: Optional[str] = None) -> int:
        spec = _spec(table)
        if frame.empty:
            return 0
        batch = _latest_per_key(conform(frame, spec), key, newer)
        with self.connect() as con:  # one connection per micro-batch: create-if-missing and write together
            self._ensure(con, spec)
            con.register("_batch", batch)
            try:
                con.execute(_merge_sql(table, "_batch", spec, key, newer, '"'))
            finally:
                con.unregister("_batch")
        return len(batch)

    def insert_new(self, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> int:
        spec = _spec(table)
        if frame.empty:
            return 0
        batch = conform(frame, spec).drop_duplicates(subset=list(key))
        with self.connect() as con:
            self._ensure(con, spec)
            con.register("_batch", batch)
            try:
                inserted = con.execute(_insert_new_sql(table, "_batch", spec, key, '"')).fetchone()
            finally:
                con.unregister("_batch")
        return int(inserted[0]) if inserted else 0

    def purge_deleted(self) -> None:
        with self.connect() as con:
            con.execute("CHECKPOINT")  # rewrite the file without the deleted rows' blocks


class BigQueryWarehouse(Warehouse):
    """BigQuery (the gcp profile): queries run with the project's dataset as default dataset."""

    project: str = Field(description="GCP project that runs the jobs")
    dataset: str = Field(description="dataset holding crm_leads_raw, rejected_leads, ...")
    location: str = Field(default="US", description="dataset location")

    _client_factory: Optional[Callable[[], Any]] = PrivateAttr(default=None)

    @property
    def dialect(self) -> str:
        return "bigquery"

    def describe(self) -> str:
        return f"bigquery://{self.project}.{self.dataset}"

    def with_client_factory(self, factory: Callable[[], Any]) -> BigQueryWarehouse:
        """Tests swap in a fake client; production builds `bigquery.Client`."""
        self._client_factory = factory
        return self

    def client(self) -> Any:
        if self._client_factory is not None:
            return self._client_factory()
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, location=self.location)

    def _job_config(self, params: Optional[dict[str, Any]]):
        from google.cloud import bigquery

        query_params = [_bq_param(k, v) for k, v in (params or {}).items()]
        return bigquery.QueryJobConfig(
            default_dataset=f"{self.project}.{self.dataset}",
            query_parameters=query_params,
            use_legacy_sql=False,
        )

    def ensure_tables(self) -> None:
        client = self.client()
        for spec in tables_in("bigquery"):
            client.query(spec.ddl("bigquery"), job_config=self._job_config(None)).result()
        for name, select in views("bigquery").items():  # over the tables above: after them
            client.query(f"CREATE OR REPLACE VIEW {name} AS\n{select}", job_config=self._job_config(None)).result()
        # one read of the dataset's columns; an ALTER only for a table that lacks some (metadata updates of a
        # table are rate-limited in BigQuery, so nothing is altered when nothing is missing)
        names = ", ".join(f"'{name}'" for name in TABLES)
        columns = (
            client.query(
                f"SELECT table_name, column_name FROM INFORMATION_SCHEMA.COLUMNS WHERE table_name IN ({names})",
                job_config=self._job_config(None),
            )
            .result()
            .to_dataframe()
        )
        for spec in tables_in("bigquery"):
            existing = (
                set(columns.loc[columns["table_name"] == spec.name, "column_name"]) if not columns.empty else set()
            )
            alters = spec.add_columns_ddl(existing, "bigquery") if existing else []  # no rows: nothing to compare
            for alter in alters:
                client.query(alter, job_config=self._job_config(None)).result()
                logger.info("warehouse %s: %s", self.describe(), alter)

    def query(self, sql: str, params: Optional[dict[str, Any]] = None) -> pd.DataFrame:
        job = self.client().query(sql, job_config=self._job_config(params))
        return job.result().to_dataframe()

    def execute(self, sql: str, params: Optional[dict[str, Any]] = None) -> None:
        self.client().query(sql, job_config=self._job_config(params)).result()

    def append(self, table: str, frame: pd.DataFrame) -> int:
        from google.cloud import bigquery

        spec = _spec(table)
        if frame.empty:
            return 0
        batch = conform(frame, spec)
        job_config = bigquery.LoadJobConfig(
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            schema=[bigquery.SchemaField(name, _BQ_SCHEMA_TYPES[t.value]) for name, t in spec.columns],
        )
        job = self.client().load_table_from_dataframe(
            batch, f"{self.project}.{self.dataset}.{table}", job_config=job_config
        )
        job.result()
        return len(batch)

    def _load_stage(self, table: str, frame: pd.DataFrame) -> str:
        """Load `frame` into a fresh staging table (load job: atomic, no streaming buffer); return its id."""
        import uuid

        from google.cloud import bigquery

        spec = _spec(table)
        stage = f"{self.project}.{self.dataset}._stage_{table}_{uuid.uuid4().hex[:12]}"
        job_config = bigquery.LoadJobConfig(
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=[bigquery.SchemaField(name, _BQ_SCHEMA_TYPES[t.value]) for name, t in spec.columns],
        )
        self.client().load_table_from_dataframe(frame, stage, job_config=job_config).result()
        return stage

    def _run_on_stage(self, table: str, frame: pd.DataFrame, sql_for: Callable[[str], str]) -> Any:
        stage = self._load_stage(table, frame)
        client = self.client()
        try:
            return client.query(sql_for(f"`{stage}`"), job_config=self._job_config(None)).result()
        finally:
            client.query(f"DROP TABLE IF EXISTS `{stage}`", job_config=self._job_config(None)).result()

    def upsert(self, table: str, frame: pd.DataFrame, key: str, newer: Optional[str] = None) -> int:
        spec = _spec(table)
        if frame.empty:
            return 0
        batch = _latest_per_key(conform(frame, spec), key, newer)
        self._run_on_stage(table, batch, lambda src: _merge_sql(table, src, spec, key, newer, "`"))
        return len(batch)

    def insert_new(self, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> int:
        spec = _spec(table)
        if frame.empty:
            return 0
        batch = conform(frame, spec).drop_duplicates(subset=list(key))
        result = self._run_on_stage(table, batch, lambda src: _insert_new_sql(table, src, spec, key, "`"))
        affected = getattr(result, "num_dml_affected_rows", None)
        return int(affected) if affected is not None else len(batch)


_BQ_SCHEMA_TYPES = {
    "string": "STRING",
    "boolean": "BOOL",
    "number": "FLOAT64",
    "int": "INT64",
    "timestamp": "TIMESTAMP",
}


def _bq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, datetime):  # pd.Timestamp included
        return "TIMESTAMP"
    return "STRING"


def _bq_param(name: str, value: Any) -> Any:
    """A query parameter: a list or tuple becomes an ARRAY (`x IN UNNEST(@name)`), anything else a scalar."""
    from google.cloud import bigquery

    if isinstance(value, (list, tuple)):
        types = {_bq_type(v) for v in value}
        if len(types) > 1:
            raise ValueError(f"query parameter @{name} mixes element types {sorted(types)}; pass one type")
        return bigquery.ArrayQueryParameter(name, types.pop() if types else "STRING", list(value))
    return bigquery.ScalarQueryParameter(name, _bq_type(value), value)
