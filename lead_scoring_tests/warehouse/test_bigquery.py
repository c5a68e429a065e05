"""The BigQuery warehouse path, against a fake client that records exactly what was sent."""

import re

import pandas as pd
import pytest
from google.cloud import bigquery

from lead_scoring.training.queries import training_data_sql
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse


class FakeJob:
    def __init__(self, frame=None):
        self.frame = frame if frame is not None else pd.DataFrame()

    def result(self):
        return self

    def to_dataframe(self):
        return self.frame


class FakeBigQueryClient:
    def __init__(self, answer: pd.DataFrame | None = None):
        self.queries: list[tuple[str, bigquery.QueryJobConfig]] = []
        self.loads: list[tuple[pd.DataFrame, str, bigquery.LoadJobConfig]] = []
        self.answer = answer

    def query(self, sql, job_config=None):
        self.queries.append((sql, job_config))
        return FakeJob(self.answer)

    def load_table_from_dataframe(self, frame, table_id, job_config=None):
        self.loads.append((frame, table_id, job_config))
        return FakeJob()


@pytest.fixture
def fake():
    return FakeBigQueryClient(answer=pd.DataFrame({"n": [1]}))


@pytest.fixture
def warehouse(fake):
    return BigQueryWarehouse(project="acme-prod", dataset="lead_scoring").with_client_factory(lambda: fake)


def test_training_sql_is_sent_verbatim_with_the_default_dataset(warehouse, fake):
    sql = training_data_sql(0.2)
    frame = warehouse.query(sql)
    assert frame.equals(fake.answer)
    [(sent, config)] = fake.queries
    assert sent == sql  # BigQuery runs the one SQL text as written, no transpiling
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY Id" in sent and "LAST_VALUE(IsConverted IGNORE NULLS)" in sent
    selected = set(re.findall(r"\b\w+\b", sent))
    assert not selected & {"Sales_Tags__c", "Lead_Quality__c", "Email", "FirstName", "Company"}
    assert config.default_dataset.project == "acme-prod" and config.default_dataset.dataset_id == "lead_scoring"
    assert config.use_legacy_sql is False


def test_query_parameters_are_typed(warehouse, fake):
    warehouse.query("SELECT * FROM crm_leads_raw WHERE _source = @source AND Total_Visits__c > @visits",
                    {"source": "stream", "visits": 3})
    [(_, config)] = fake.queries
    params = {p.name: (p.type_, p.value) for p in config.query_parameters}
    assert params == {"source": ("STRING", "stream"), "visits": ("INT64", 3)}


def test_ensure_tables_sends_contract_ddl(warehouse, fake):
    warehouse.ensure_tables()
    sent = [sql for sql, _ in fake.queries]
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS crm_leads_raw") and "`Total_Visits__c` FLOAT64" in s for s in sent)
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS rejected_leads") for s in sent)


def test_append_is_a_load_job_with_the_contract_schema(warehouse, fake):
    rows = pd.DataFrame([{"Id": "00Q1", "_ObjectType": "Lead", "LastModifiedDate": "2026-01-01T00:00:00Z",
                          "Total_Visits__c": 2, "HasOptedOutOfEmail": True, "Unknown": "dropped",
                          "_source": "stream", "_ingested_at": "2026-01-01T00:00:01Z"}])
    assert warehouse.append("crm_leads_raw", rows) == 1
    [(frame, table_id, config)] = fake.loads
    assert table_id == "acme-prod.lead_scoring.crm_leads_raw"
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_APPEND
    schema = {f.name: f.field_type for f in config.schema}
    assert schema["Total_Visits__c"] == "FLOAT64" and schema["LastModifiedDate"] == "TIMESTAMP"
    assert "Unknown" not in frame.columns and frame["Total_Visits__c"].iloc[0] == 2.0
    assert str(frame["LastModifiedDate"].dt.tz) == "UTC"


def test_the_same_sql_runs_on_duckdb(tmp_path):
    duck = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    assert duck.query(training_data_sql(0.2)).empty  # parses, transpiles and runs on empty tables
    with pytest.raises(ValueError, match="unknown warehouse table"):
        duck.append("nope", pd.DataFrame({"a": [1]}))


def test_lists_are_sent_as_array_parameters_and_datetimes_as_timestamps(warehouse, fake):
    since = pd.Timestamp("2026-11-01", tz="UTC")
    warehouse.execute("DELETE FROM lead_scores WHERE Id IN UNNEST(@ids) AND scored_ts >= @since",
                      {"ids": ["00QA", "00QB"], "since": since})
    [(_, config)] = fake.queries
    ids, ts = config.query_parameters
    assert isinstance(ids, bigquery.ArrayQueryParameter) and ids.array_type == "STRING"
    assert ids.values == ["00QA", "00QB"]
    assert isinstance(ts, bigquery.ScalarQueryParameter) and ts.type_ == "TIMESTAMP" and ts.value == since
    with pytest.raises(ValueError, match="@mixed mixes element types"):
        warehouse.execute("SELECT 1", {"mixed": ["a", 1]})


def test_duckdb_runs_the_same_array_parameter_sql(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    wh.append("crm_leads", pd.DataFrame({"Id": ["00QA", "00QB", "00QC"], "_ObjectType": "Lead"}))
    wh.execute("DELETE FROM crm_leads WHERE Id IN UNNEST(@ids)", {"ids": ["00QA", "00QC", "00QX"]})
    assert wh.query("SELECT Id FROM crm_leads")["Id"].tolist() == ["00QB"]
