"""The warehouse tables, derived from the contract (one definition of the lead schema)."""

from __future__ import annotations

from dataclasses import dataclass

from lead_scoring.contract.fields import (
    LEAD_FIELDS,
    LEDGER_COLUMNS,
    SCORE_FIELDS,
    FieldType,
)
from lead_scoring.contract.schemas import RAW_META_COLUMNS, create_table_ddl, sql_type


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, FieldType], ...]
    description: str

    def ddl(self, dialect: str) -> str:
        return create_table_ddl(self.name, [(c, sql_type(t, dialect)) for c, t in self.columns], dialect)

    def add_columns_ddl(self, existing: set[str], dialect: str) -> list[str]:
        """`ALTER TABLE ... ADD COLUMN IF NOT EXISTS` for the columns a table made by an older version lacks
        (columns are only ever added, nullable): one statement in BigQuery, one per column in DuckDB (which
        takes one ALTER command per statement); empty when the table has them all."""
        missing = [(c, t) for c, t in self.columns if c not in existing]
        if not missing:
            return []
        quote = "`" if dialect == "bigquery" else '"'
        adds = [f"ADD COLUMN IF NOT EXISTS {quote}{c}{quote} {sql_type(t, dialect)}" for c, t in missing]
        if dialect == "bigquery":
            return [f"ALTER TABLE {self.name} {', '.join(adds)}"]
        return [f"ALTER TABLE {self.name} {add}" for add in adds]

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


LEDGER_TABLE = "lead_score_history"
SHADOW_SCORES_TABLE = "lead_scores_shadow"
_LEAD_COLUMNS = tuple((f.name, f.type) for f in LEAD_FIELDS)
_SCORE_TYPES = {f.name: f.type for f in SCORE_FIELDS} | {"shadow": FieldType.BOOLEAN}
_LEDGER_COLUMNS = tuple((name, _SCORE_TYPES[name]) for name in LEDGER_COLUMNS)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "crm_leads_raw",
            _LEAD_COLUMNS + RAW_META_COLUMNS,
            "every CRM change record that passed the contract (seed, imports, stream)",
        ),
        TableSpec(
            "rejected_leads",
            (("Id", FieldType.STRING), ("payload", FieldType.STRING), ("reason", FieldType.STRING)) + RAW_META_COLUMNS,
            "records that failed the contract, with the reason",
        ),
        TableSpec(
            "lead_scores",
            tuple((f.name, f.type) for f in SCORE_FIELDS) + RAW_META_COLUMNS,
            "scores produced by the stream (lead_scores and contact_scores topics)",
        ),
        TableSpec(
            SHADOW_SCORES_TABLE,
            tuple((f.name, f.type) for f in SCORE_FIELDS) + RAW_META_COLUMNS,
            "the challenger's shadow scores (lead_scores_shadow topic), where a managed sink lands them "
            "(gcp: the BigQuery sink; the ledger view reads them); locally the sink puts them in the ledger",
        ),
        TableSpec(
            "crm_leads",
            (
                ("Id", FieldType.STRING),
                ("_ObjectType", FieldType.STRING),
                ("Lead_Score__c", FieldType.INT),
                ("Lead_Score_Reasons__c", FieldType.STRING),
                ("Lead_Score_Model__c", FieldType.STRING),
                ("source_ts", FieldType.TIMESTAMP),
                ("scored_ts", FieldType.TIMESTAMP),
                ("written_at", FieldType.TIMESTAMP),
                ("Lead_Grade__c", FieldType.STRING),
            ),  # added later: ensure_tables adds it to older files
            "the local CRM: current score per record, written back by the writeback worker",
        ),
        TableSpec(
            "crm_writeback_errors",
            (
                ("Id", FieldType.STRING),
                ("_ObjectType", FieldType.STRING),
                ("payload", FieldType.STRING),
                ("reason", FieldType.STRING),
                ("target", FieldType.STRING),
                ("failed_at", FieldType.TIMESTAMP),
            ),
            "score records the writeback could not write to the CRM (unknown Id, field rejected, bad record)",
        ),
        TableSpec(
            "worker_quarantine",
            (
                ("worker", FieldType.STRING),
                ("topic", FieldType.STRING),
                ("kafka_partition", FieldType.INT),
                ("kafka_offset", FieldType.INT),
                ("Id", FieldType.STRING),
                ("payload", FieldType.STRING),
                ("payload_bytes", FieldType.INT),
                ("error", FieldType.STRING),
                ("quarantined_at", FieldType.TIMESTAMP),
            ),
            "score records a CRM worker could not decode, validate or write: the Kafka key as Id, the first "
            "10 KB of the value (non-UTF-8 bytes as \\xNN), its size and the error; offsets committed",
        ),
        TableSpec(
            "lead_score_history",
            _LEDGER_COLUMNS + RAW_META_COLUMNS,
            "the score ledger: every score produced, champion or shadow (append only; erasure deletes)",
        ),
        TableSpec(
            "rescore_runs",
            (
                ("run_id", FieldType.STRING),
                ("model_version", FieldType.STRING),
                ("source_ms", FieldType.INT),
                ("total", FieldType.INT),
                ("produced", FieldType.INT),
                ("last_id", FieldType.STRING),
                ("status", FieldType.STRING),
                ("started_at", FieldType.TIMESTAMP),
                ("updated_at", FieldType.TIMESTAMP),
                ("finished_at", FieldType.TIMESTAMP),
            ),
            "full re-score runs after a promotion: checkpoint (counts, last Id produced while running)",
        ),
        TableSpec(
            "erasure_register",
            (("id_hash", FieldType.STRING), ("trigger", FieldType.STRING), ("erased_at", FieldType.TIMESTAMP)),
            "keyed hashes (HMAC-SHA256) of erased Ids, so their records still in Kafka are dropped; no Id",
        ),
    )
}


def _ledger_view_sql() -> str:
    """The ledger as a view over the score tables a managed sink fills (the BigQuery Sink V2 lands
    `lead_scores`/`contact_scores` in `lead_scores` and `lead_scores_shadow` in its own table): the columns of
    `lead_score_history` (LEDGER_COLUMNS, then `_source`, `_ingested_at`), one row per (Id, model, source_ts,
    features_hash, shadow) like the local sink's idempotent insert (the connector delivers at least once)."""
    score_columns = ", ".join(c for c in LEDGER_COLUMNS if c != "shadow")
    key = "Id, Lead_Score_Model__c, source_ts, features_hash, shadow"
    return f"""
SELECT {", ".join(LEDGER_COLUMNS)}, _source, _ingested_at
FROM (
  SELECT {score_columns}, FALSE AS shadow, _source, _ingested_at FROM lead_scores
  UNION ALL
  SELECT {score_columns}, TRUE AS shadow, _source, _ingested_at FROM {SHADOW_SCORES_TABLE}
) AS scores
QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY _ingested_at) = 1
""".strip()


LEDGER_VIEW_SQL = _ledger_view_sql()
# Relations that are views in a warehouse dialect (a table in the others): in BigQuery the ledger is fed from the
# score topics by the BigQuery sink, so comparison, backtest and re-score read the same `lead_score_history`
# SQL in both warehouses (locally the sink worker appends to the table).
VIEWS: dict[str, dict[str, str]] = {"bigquery": {LEDGER_TABLE: LEDGER_VIEW_SQL}}


def views(dialect: str) -> dict[str, str]:
    """name -> SELECT of the relations that are views in `dialect`."""
    return VIEWS.get(dialect, {})


def tables_in(dialect: str) -> list[TableSpec]:
    """The TABLES that are tables (not views) in `dialect`: what is created, altered, erased."""
    return [spec for spec in TABLES.values() if spec.name not in views(dialect)]
