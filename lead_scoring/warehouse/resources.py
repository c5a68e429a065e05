"""The warehouse as a Dagster resource: a DuckDB file (local) or BigQuery (gcp).

SQL is written once, in BigQuery Standard SQL with unqualified table names: BigQuery resolves them
through the job's default dataset; DuckDB runs the same text transpiled by sqlglot.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import dagster as dg
import pandas as pd
import sqlglot
from pydantic import Field, PrivateAttr

from lead_scoring.warehouse.tables import TABLES, TableSpec

logger = logging.getLogger(__name__)


class Warehouse(dg.ConfigurableResource):
    """Run BigQuery-dialect SQL and append frames to the project's tables."""

    def ensure_tables(self) -> None:
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


def _spec(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"unknown warehouse table {table!r}; known: {', '.join(TABLES)}") from None


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
            col = col.astype(object).where(col.notna(), None).map(lambda v: None if v is None else bool(v)).astype("boolean")
        else:
            col = col.astype(object).where(col.notna(), None)
        out[name] = col
    return out


class DuckDBWarehouse(Warehouse):
    """A DuckDB file: the local profile's warehouse."""

    path: str = Field(description="DuckDB database file")

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def dialect(self) -> str:
        return "duckdb"

    def describe(self) -> str:
        return f"duckdb://{self.path}"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        import duckdb

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # DuckDB allows one writer process; connections are short-lived so workers and assets take turns.
        with self._lock:
            con = duckdb.connect(self.path)
            try:
                yield con
            finally:
                con.close()

    def ensure_tables(self) -> None:
        with self.connect() as con:
            for spec in TABLES.values():
                con.execute(spec.ddl("duckdb"))

    def transpile(self, sql: str) -> str:
        return ";\n".join(sqlglot.transpile(sql, read="bigquery", write="duckdb"))

    def query(self, sql: str, params: Optional[dict[str, Any]] = None) -> pd.DataFrame:
        self.ensure_tables()
        with self.connect() as con:
            return con.execute(self.transpile(sql), params or {}).df()

    def execute(self, sql: str, params: Optional[dict[str, Any]] = None) -> None:
        self.ensure_tables()
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
            con.execute(f'INSERT INTO {table} ({cols}) SELECT {cols} FROM _batch')
            con.unregister("_batch")
        return len(batch)


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

    def with_client_factory(self, factory: Callable[[], Any]) -> "BigQueryWarehouse":
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

        query_params = [bigquery.ScalarQueryParameter(k, _bq_type(v), v) for k, v in (params or {}).items()]
        return bigquery.QueryJobConfig(
            default_dataset=f"{self.project}.{self.dataset}",
            query_parameters=query_params,
            use_legacy_sql=False,
        )

    def ensure_tables(self) -> None:
        client = self.client()
        for spec in TABLES.values():
            client.query(spec.ddl("bigquery"), job_config=self._job_config(None)).result()

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


_BQ_SCHEMA_TYPES = {"string": "STRING", "boolean": "BOOL", "number": "FLOAT64", "int": "INT64", "timestamp": "TIMESTAMP"}


def _bq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "STRING"
