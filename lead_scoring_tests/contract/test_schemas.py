"""Schemas derived from the one contract definition."""

import fastavro

from lead_scoring.contract import FEATURES, FIELD_NAMES, FORBIDDEN_FEATURES, LEAKAGE_FIELDS, PII_FIELDS, SCORE_FIELDS
from lead_scoring.contract.schemas import lead_avro_schema, raw_table_columns, score_avro_schema
from lead_scoring.warehouse.tables import TABLES


def test_avro_schemas_parse_and_cover_the_contract():
    lead = fastavro.parse_schema(lead_avro_schema())
    score = fastavro.parse_schema(score_avro_schema())
    assert [f["name"] for f in lead["fields"]] == list(FIELD_NAMES)
    assert [f["name"] for f in score["fields"]] == [f.name for f in SCORE_FIELDS]
    required = {f["name"] for f in lead["fields"] if not isinstance(f["type"], list)}
    assert required == {"Id", "_ObjectType", "LastModifiedDate"}


def test_leakage_and_pii_are_never_features():
    assert not FORBIDDEN_FEATURES.intersection(FEATURES)
    assert {"Sales_Tags__c", "Lead_Quality__c", "Last_Notable_Activity__c"} <= set(LEAKAGE_FIELDS)
    assert "Email" in PII_FIELDS and "IsConverted" not in FEATURES


def test_warehouse_ddl_comes_from_the_contract():
    for dialect in ("duckdb", "bigquery"):
        cols = [c for c, _ in raw_table_columns(dialect)]
        assert cols[: len(FIELD_NAMES)] == list(FIELD_NAMES)
        ddl = TABLES["crm_leads_raw"].ddl(dialect)
        assert all(name in ddl for name in FIELD_NAMES)
    assert "FLOAT64" in TABLES["crm_leads_raw"].ddl("bigquery")
    assert "TIMESTAMPTZ" in TABLES["crm_leads_raw"].ddl("duckdb")
