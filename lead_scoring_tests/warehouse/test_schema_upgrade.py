"""An existing warehouse keeps working after columns are added to the contract: ensure_tables adds them."""

from __future__ import annotations

import duckdb
import pandas as pd
import sqlglot

from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse
from lead_scoring.warehouse.tables import TABLES
from lead_scoring_tests.warehouse.fake_bigquery import FakeBigQuery

# crm_leads and lead_scores as the version before grades created them
OLD_CRM_LEADS = (
    'CREATE TABLE crm_leads ("Id" VARCHAR, "_ObjectType" VARCHAR, "Lead_Score__c" BIGINT, '
    '"Lead_Score_Reasons__c" VARCHAR, "Lead_Score_Model__c" VARCHAR, "source_ts" TIMESTAMPTZ, '
    '"scored_ts" TIMESTAMPTZ, "written_at" TIMESTAMPTZ)'
)
OLD_LEAD_SCORES = (
    'CREATE TABLE lead_scores ("Id" VARCHAR, "_ObjectType" VARCHAR, "_EventType" VARCHAR, '
    '"Lead_Score__c" BIGINT, "Lead_Score_Reasons__c" VARCHAR, "Lead_Score_Model__c" VARCHAR, '
    '"source_ts" TIMESTAMPTZ, "scored_ts" TIMESTAMPTZ, "_source" VARCHAR, "_ingested_at" TIMESTAMPTZ)'
)


def _columns(path: str, table: str) -> list[str]:
    with duckdb.connect(path) as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        ]


def test_an_older_duckdb_file_gets_the_new_columns_and_keeps_its_rows(tmp_path):
    path = str(tmp_path / "old.duckdb")
    with duckdb.connect(path) as con:
        con.execute(OLD_CRM_LEADS)
        con.execute(OLD_LEAD_SCORES)
        con.execute("INSERT INTO crm_leads VALUES ('00Q1', 'Lead', 40, '+API', 'm1', now(), now(), now())")
    warehouse = DuckDBWarehouse(path=path)
    # the writeback's upsert is the first thing to touch crm_leads after an upgrade
    warehouse.upsert(
        "crm_leads",
        pd.DataFrame(
            [
                {
                    "Id": "00Q2",
                    "_ObjectType": "Lead",
                    "Lead_Score__c": 70,
                    "Lead_Score_Reasons__c": "+Lead Add Form",
                    "Lead_Score_Model__c": "m2",
                    "Lead_Grade__c": "A",
                    "source_ts": pd.Timestamp.now(tz="UTC"),
                    "scored_ts": pd.Timestamp.now(tz="UTC"),
                    "written_at": pd.Timestamp.now(tz="UTC"),
                }
            ]
        ),
        key="Id",
        newer="scored_ts",
    )
    warehouse.ensure_tables()
    assert set(_columns(path, "crm_leads")) == set(TABLES["crm_leads"].column_names)
    assert set(_columns(path, "lead_scores")) == set(TABLES["lead_scores"].column_names)
    rows = warehouse.query("SELECT Id, Lead_Grade__c FROM crm_leads ORDER BY Id")
    assert rows.to_dict("records") == [{"Id": "00Q1", "Lead_Grade__c": None}, {"Id": "00Q2", "Lead_Grade__c": "A"}]
    # a second process (a new resource) finds nothing to add
    DuckDBWarehouse(path=path).ensure_tables()
    assert set(_columns(path, "crm_leads")) == set(TABLES["crm_leads"].column_names)


def test_bigquery_alters_only_the_tables_missing_columns():
    current = [
        (t, c)
        for t, spec in TABLES.items()
        for c in spec.column_names
        if not (t == "crm_leads" and c == "Lead_Grade__c")
    ]
    schema = [
        {"name": "table_name", "type": "STRING", "mode": "NULLABLE"},
        {"name": "column_name", "type": "STRING", "mode": "NULLABLE"},
    ]
    fake = FakeBigQuery(answers={"INFORMATION_SCHEMA.COLUMNS": (schema, [list(r) for r in current])}).start()
    try:
        BigQueryWarehouse(project="acme-prod", dataset="lead_scoring").with_client_factory(fake.client).ensure_tables()
        alters = [q for q in fake.queries() if q.startswith("ALTER TABLE")]
    finally:
        fake.stop()
    assert alters == ["ALTER TABLE crm_leads ADD COLUMN IF NOT EXISTS `Lead_Grade__c` STRING"]
    sqlglot.parse_one(alters[0], read="bigquery")
