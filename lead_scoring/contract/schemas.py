"""Schemas derived from the contract: Avro (input_avro, scores) and warehouse DDL (DuckDB / BigQuery)."""

from __future__ import annotations

from typing import Any

from lead_scoring.contract.fields import LEAD_FIELDS, SCORE_FIELDS, FieldType

AVRO_NAMESPACE = "io.leadscoring"

_AVRO_TYPES: dict[FieldType, Any] = {
    FieldType.STRING: "string",
    FieldType.BOOLEAN: "boolean",
    FieldType.NUMBER: "double",
    FieldType.INT: "int",
    FieldType.TIMESTAMP: {"type": "long", "logicalType": "timestamp-millis"},
}

# Warehouse column types per dialect; the training SQL is written for BigQuery and transpiled.
_SQL_TYPES: dict[str, dict[FieldType, str]] = {
    "bigquery": {
        FieldType.STRING: "STRING",
        FieldType.BOOLEAN: "BOOL",
        FieldType.NUMBER: "FLOAT64",
        FieldType.INT: "INT64",
        FieldType.TIMESTAMP: "TIMESTAMP",
    },
    "duckdb": {
        FieldType.STRING: "VARCHAR",
        FieldType.BOOLEAN: "BOOLEAN",
        FieldType.NUMBER: "DOUBLE",
        FieldType.INT: "BIGINT",
        FieldType.TIMESTAMP: "TIMESTAMPTZ",
    },
}

# Bookkeeping columns every raw table carries besides the contract's fields.
RAW_META_COLUMNS: tuple[tuple[str, FieldType], ...] = (
    ("_source", FieldType.STRING),  # seed | import:<file> | stream
    ("_ingested_at", FieldType.TIMESTAMP),
)


def _avro_field(name: str, ftype: FieldType, nullable: bool, doc: str) -> dict[str, Any]:
    avro_type = _AVRO_TYPES[ftype]
    field: dict[str, Any] = {"name": name, "type": ["null", avro_type] if nullable else avro_type}
    if nullable:
        field["default"] = None
    if doc:
        field["doc"] = doc
    return field


def lead_avro_schema() -> dict[str, Any]:
    """Avro schema of `input_avro` / `leads` / `contacts` records."""
    return {
        "type": "record",
        "name": "LeadRecord",
        "namespace": AVRO_NAMESPACE,
        "doc": "Salesforce Lead/Contact change record (shared/contracts/lead-record.md section 1)",
        "fields": [_avro_field(f.name, f.type, f.nullable, f.description) for f in LEAD_FIELDS],
    }


def score_avro_schema() -> dict[str, Any]:
    """Avro schema of `lead_scores` / `contact_scores` records (Schema Registry format in Confluent Cloud)."""
    return {
        "type": "record",
        "name": "LeadScore",
        "namespace": AVRO_NAMESPACE,
        "doc": "Conversion score of one Lead/Contact (shared/contracts/lead-record.md section 2)",
        "fields": [_avro_field(f.name, f.type, f.nullable, f.description) for f in SCORE_FIELDS],
    }


def sql_type(ftype: FieldType, dialect: str) -> str:
    return _SQL_TYPES[dialect][ftype]


def raw_table_columns(dialect: str) -> list[tuple[str, str]]:
    """(column, type) of `crm_leads_raw`/`rejected_leads`-style tables: contract fields + bookkeeping."""
    cols = [(f.name, sql_type(f.type, dialect)) for f in LEAD_FIELDS]
    cols += [(name, sql_type(t, dialect)) for name, t in RAW_META_COLUMNS]
    return cols


def score_table_columns(dialect: str) -> list[tuple[str, str]]:
    return [(f.name, sql_type(f.type, dialect)) for f in SCORE_FIELDS]


def create_table_ddl(table: str, columns: list[tuple[str, str]], dialect: str) -> str:
    quote = "`" if dialect == "bigquery" else '"'
    body = ",\n  ".join(f"{quote}{name}{quote} {ctype}" for name, ctype in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"
