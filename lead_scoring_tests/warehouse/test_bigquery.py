"""The BigQuery warehouse path: the REAL google-cloud-bigquery client against a loopback BigQuery REST API
(lead_scoring_tests/warehouse/fake_bigquery.py); the tests assert the job resources the library sent."""

import re

import pandas as pd
import pytest
import sqlglot

from lead_scoring.training.queries import training_data_sql
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse
from lead_scoring_tests.warehouse.fake_bigquery import FakeBigQuery


@pytest.fixture
def fake():
    bq = FakeBigQuery(answers={"COUNT(*)": ([{"name": "n", "type": "INTEGER", "mode": "NULLABLE"}], [[7]])}).start()
    yield bq
    bq.stop()


@pytest.fixture
def warehouse(fake):
    return BigQueryWarehouse(project="acme-prod", dataset="lead_scoring").with_client_factory(fake.client)


def test_training_sql_is_sent_verbatim_with_the_default_dataset(warehouse, fake):
    sql = training_data_sql(0.2)
    warehouse.query(sql)
    [config] = fake.job_configs("query")
    assert config["query"] == sql  # BigQuery runs the one SQL text as written, no transpiling
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY Id" in sql and "LAST_VALUE(IsConverted IGNORE NULLS)" in sql
    selected = set(re.findall(r"\b\w+\b", sql))
    assert not selected & {"Sales_Tags__c", "Lead_Quality__c", "Email", "FirstName", "Company"}
    assert config["defaultDataset"] == {"projectId": "acme-prod", "datasetId": "lead_scoring"}
    assert config["useLegacySql"] is False
    job = next(c for c in fake.calls if c.method == "POST")
    assert job.path == "/bigquery/v2/projects/acme-prod/jobs" and job.body["jobReference"]["location"] == "US"


def test_query_results_come_back_as_a_frame_and_parameters_are_typed(warehouse, fake):
    frame = warehouse.query(
        "SELECT COUNT(*) AS n FROM crm_leads_raw WHERE _source = @source AND Total_Visits__c > @visits",
        {"source": "stream", "visits": 3},
    )
    assert frame.to_dict("records") == [{"n": 7}]
    [config] = fake.job_configs("query")
    assert config["parameterMode"] == "NAMED"
    params = {p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"]) for p in config["queryParameters"]}
    assert params == {"source": ("STRING", "stream"), "visits": ("INT64", "3")}


def test_ensure_tables_sends_contract_ddl(warehouse, fake):
    warehouse.ensure_tables()
    sent = fake.queries()
    assert any(
        s.startswith("CREATE TABLE IF NOT EXISTS crm_leads_raw") and "`Total_Visits__c` FLOAT64" in s for s in sent
    )
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS rejected_leads") for s in sent)
    for statement in sent:  # every DDL parses as GoogleSQL
        sqlglot.parse_one(statement, read="bigquery")


def test_append_is_a_load_job_with_the_contract_schema(warehouse, fake):
    import pyarrow.parquet as pq

    rows = pd.DataFrame(
        [
            {
                "Id": "00Q1",
                "_ObjectType": "Lead",
                "LastModifiedDate": "2026-01-01T00:00:00Z",
                "Total_Visits__c": 2,
                "HasOptedOutOfEmail": True,
                "Unknown": "dropped",
                "_source": "stream",
                "_ingested_at": "2026-01-01T00:00:01Z",
            }
        ]
    )
    assert warehouse.append("crm_leads_raw", rows) == 1
    [load] = [c for c in fake.calls if c.path.startswith("/upload/")]
    assert load.query["uploadType"] == ["multipart"]
    config = load.body["configuration"]["load"]
    assert config["destinationTable"] == {
        "projectId": "acme-prod",
        "datasetId": "lead_scoring",
        "tableId": "crm_leads_raw",
    }
    assert config["writeDisposition"] == "WRITE_APPEND" and config["sourceFormat"] == "PARQUET"
    schema = {f["name"]: f["type"] for f in config["schema"]["fields"]}
    assert schema["Total_Visits__c"] == "FLOAT64" and schema["LastModifiedDate"] == "TIMESTAMP"
    assert "Unknown" not in schema
    import io

    table = pq.read_table(io.BytesIO(load.upload))  # the parquet bytes that went over the wire
    assert "Unknown" not in table.column_names and table.column("Total_Visits__c").to_pylist() == [2.0]
    assert str(table.schema.field("LastModifiedDate").type) == "timestamp[us, tz=UTC]"


def test_upsert_merges_a_staged_batch_and_drops_the_stage(warehouse, fake):
    scores = pd.DataFrame(
        [{"Id": "00Q1", "_ObjectType": "Lead", "Lead_Score__c": 42, "scored_ts": "2026-01-01T00:00:00Z"}]
    )
    warehouse.upsert("lead_scores", scores, key="Id", newer="scored_ts")
    [load] = fake.job_configs("load")
    stage = load["destinationTable"]["tableId"]
    assert stage.startswith("_stage_lead_scores_") and load["writeDisposition"] == "WRITE_TRUNCATE"
    merge, drop = fake.queries()
    assert merge.startswith(
        f"MERGE INTO lead_scores AS t USING `acme-prod.lead_scoring.{stage}` AS s ON t.`Id` = s.`Id`"
    )
    assert "WHEN MATCHED AND s.`scored_ts` >= t.`scored_ts` THEN UPDATE SET" in merge
    assert drop == f"DROP TABLE IF EXISTS `acme-prod.lead_scoring.{stage}`"
    sqlglot.parse_one(merge, read="bigquery")


def test_insert_new_compares_keys_null_safely_in_googlesql(warehouse, fake):
    """Unsettled item of issue 12: `IS NOT DISTINCT FROM` is GoogleSQL (operators reference, 'IS DISTINCT FROM
    operator'); a NULL key matches itself, so a replayed row with a NULL LastModifiedDate is not inserted twice."""
    rows = pd.DataFrame([{"Id": "00Q1", "_ObjectType": "Lead", "LastModifiedDate": None, "_source": "stream"}])
    warehouse.insert_new("crm_leads_raw", rows, key=("Id", "LastModifiedDate"))
    insert = next(q for q in fake.queries() if q.startswith("INSERT INTO crm_leads_raw"))
    assert (
        "t.`Id` IS NOT DISTINCT FROM s.`Id` AND "
        "t.`LastModifiedDate` IS NOT DISTINCT FROM s.`LastModifiedDate`" in insert
    )
    parsed = sqlglot.parse_one(insert, read="bigquery")
    assert parsed.find(sqlglot.exp.NullSafeEQ) is not None  # read as the null-safe comparison, not as text


def test_the_same_sql_runs_on_duckdb(tmp_path):
    duck = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    assert duck.query(training_data_sql(0.2)).empty  # parses, transpiles and runs on empty tables
    with pytest.raises(ValueError, match="unknown warehouse table"):
        duck.append("nope", pd.DataFrame({"a": [1]}))


def test_lists_are_sent_as_array_parameters_and_datetimes_as_timestamps(warehouse, fake):
    since = pd.Timestamp("2026-11-01", tz="UTC")
    warehouse.execute(
        "DELETE FROM lead_scores WHERE Id IN UNNEST(@ids) AND scored_ts >= @since",
        {"ids": ["00QA", "00QB"], "since": since},
    )
    [config] = fake.job_configs("query")
    params = {p["name"]: p for p in config["queryParameters"]}
    assert params["ids"]["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "STRING"}}
    assert [v["value"] for v in params["ids"]["parameterValue"]["arrayValues"]] == ["00QA", "00QB"]
    assert params["since"]["parameterType"] == {"type": "TIMESTAMP"}
    assert params["since"]["parameterValue"]["value"].startswith("2026-11-01")
    with pytest.raises(ValueError, match="@mixed mixes element types"):
        warehouse.execute("SELECT 1", {"mixed": ["a", 1]})


def test_duckdb_runs_the_same_array_parameter_sql(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    wh.append("crm_leads", pd.DataFrame({"Id": ["00QA", "00QB", "00QC"], "_ObjectType": "Lead"}))
    wh.execute("DELETE FROM crm_leads WHERE Id IN UNNEST(@ids)", {"ids": ["00QA", "00QC", "00QX"]})
    assert wh.query("SELECT Id FROM crm_leads")["Id"].tolist() == ["00QB"]
