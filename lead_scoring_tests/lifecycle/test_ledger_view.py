"""The ledger in BigQuery: a view over the score tables the BigQuery sink fills, read by the same SQL as locally.

Locally the sink worker appends to the table `lead_score_history`; in gcp no worker runs, the BigQuery Sink V2
lands `lead_scores`/`contact_scores` in `lead_scores` and `lead_scores_shadow` in its own table, and the
warehouse resource makes `lead_score_history` a view over both (warehouse.tables.LEDGER_VIEW_SQL). The view's
GoogleSQL is parsed with sqlglot's bigquery dialect and run, transpiled, on DuckDB; the comparison, backtest
and re-score SQL then run unchanged over it.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlglot

from lead_scoring.contract import LEDGER_COLUMNS
from lead_scoring.crm.assets import ConnectorSettings, bigquery_sink_configs
from lead_scoring.monitoring.backtest import backtest_sql
from lead_scoring.promotion.comparison import pairs_sql
from lead_scoring.promotion.rescore import RescoreRun, scored_by
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse
from lead_scoring.warehouse.tables import LEDGER_TABLE, LEDGER_VIEW_SQL, SHADOW_SCORES_TABLE, TABLES, views
from lead_scoring_tests.warehouse.fake_bigquery import FakeBigQuery

T0 = pd.Timestamp("2026-11-02 10:00", tz="UTC")


def _score(
    rid: str,
    model: str,
    score: int,
    source: pd.Timestamp,
    scored: pd.Timestamp,
    fh: str = "f1",
    ingested: pd.Timestamp = T0,
) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "updated",
        "Lead_Score__c": score,
        "Lead_Score_Reasons__c": "+ visits",
        "Lead_Score_Model__c": model,
        "Lead_Grade__c": "B",
        "features_hash": fh,
        "source_ts": source,
        "scored_ts": scored,
        "_source": "stream",
        "_ingested_at": ingested,
    }


@pytest.fixture
def gcp_like(tmp_path) -> DuckDBWarehouse:
    """A DuckDB warehouse filled the way the BigQuery sink fills BigQuery: score tables, no ledger rows."""
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    wh.ensure_tables()
    s1, s2 = T0, T0 + pd.Timedelta(minutes=5)
    wh.append(
        "lead_scores",
        pd.DataFrame(
            [
                _score("00Q1", "m1", 40, s1, s1 + pd.Timedelta(seconds=1)),
                _score(
                    "00Q1", "m1", 40, s1, s1 + pd.Timedelta(seconds=9), ingested=T0 + pd.Timedelta(minutes=1)
                ),  # replay
                _score("00Q2", "m1", 70, s2, s2 + pd.Timedelta(seconds=1)),
                _score("PROBE-1", "m1", 10, s2, s2),
            ]
        ),
    )
    wh.append(
        SHADOW_SCORES_TABLE,
        pd.DataFrame(
            [
                _score("00Q1", "m2", 55, s1, s1 + pd.Timedelta(seconds=2)),
                _score("00Q2", "m2", 80, s2, s2 + pd.Timedelta(seconds=2)),
            ]
        ),
    )
    wh.append(
        "crm_leads_raw",
        pd.DataFrame(
            [
                {
                    "Id": rid,
                    "_ObjectType": "Lead",
                    "_EventType": "updated",
                    "LastModifiedDate": T0 - pd.Timedelta(days=40),
                    "IsConverted": conv,
                    "_source": "stream",
                    "_ingested_at": T0,
                }
                for rid, conv in (("00Q1", True), ("00Q2", False))
            ]
        ),
    )
    with wh.connect() as con:  # the ledger as gcp has it: the view, not the sink worker's table
        con.execute(f"DROP TABLE {LEDGER_TABLE}")
        con.execute(f"CREATE VIEW {LEDGER_TABLE} AS {wh.transpile(LEDGER_VIEW_SQL)}")
    return wh


def _run(wh: DuckDBWarehouse, sql: str, params: dict | None = None) -> pd.DataFrame:
    with wh.connect() as con:  # not wh.query: its ensure_tables would meet a view where it made a table
        return con.execute(wh.transpile(sql), params or {}).df()


def test_the_view_is_googlesql_with_the_ledger_columns():
    tree = sqlglot.parse_one(f"CREATE OR REPLACE VIEW {LEDGER_TABLE} AS\n{LEDGER_VIEW_SQL}", read="bigquery")
    assert tree.find(sqlglot.exp.Union) is not None
    assert views("bigquery") == {LEDGER_TABLE: LEDGER_VIEW_SQL} and views("duckdb") == {}
    select = sqlglot.parse_one(LEDGER_VIEW_SQL, read="bigquery")
    assert [e.alias_or_name for e in select.expressions] == TABLES[LEDGER_TABLE].column_names
    assert list(TABLES[LEDGER_TABLE].column_names[: len(LEDGER_COLUMNS)]) == list(LEDGER_COLUMNS)


def test_the_view_has_every_score_once_champion_and_shadow(gcp_like):
    ledger = _run(gcp_like, f"SELECT * FROM {LEDGER_TABLE} ORDER BY Id, shadow")
    assert list(ledger.columns) == TABLES[LEDGER_TABLE].column_names
    rows = {(r.Id, r.Lead_Score_Model__c, bool(r.shadow)) for r in ledger.itertuples()}
    assert rows == {
        ("00Q1", "m1", False),
        ("00Q1", "m2", True),
        ("00Q2", "m1", False),
        ("00Q2", "m2", True),
        ("PROBE-1", "m1", False),
    }
    assert len(ledger) == 5  # the connector's redelivery of 00Q1's score is the same score, once
    first = ledger[(ledger.Id == "00Q1") & ~ledger.shadow.astype(bool)].iloc[0]
    assert first.scored_ts == T0 + pd.Timedelta(seconds=1)  # the first landed copy


def test_comparison_backtest_and_rescore_read_the_view_with_their_own_sql(gcp_like):
    pairs = _run(gcp_like, pairs_sql(), {"challenger": "m2"})
    assert set(pairs["Id"]) == {"00Q1", "00Q2"}  # probes never; each champion score paired with the shadow's
    got = pairs.set_index("Id")
    assert got.loc["00Q1", "champion_score"] == 40 and got.loc["00Q1", "challenger_score"] == 55
    assert bool(got.loc["00Q1", "converted"]) is True
    backtest = _run(gcp_like, backtest_sql(0))
    assert sorted(backtest["Id"]) == ["00Q1", "00Q2"] and set(backtest["model_version"]) == {"m1"}
    run = RescoreRun(run_id="r", model_version="m1", source_ms=int(T0.value // 1_000_000), total=2)
    assert scored_by(gcp_like, run) == 1  # re-score progress: 00Q1 was scored from that input


def test_bigquery_makes_the_ledger_a_view_after_the_tables_and_the_sink_fills_them():
    fake = FakeBigQuery(answers={"COUNT(*)": ([{"name": "n", "type": "INTEGER", "mode": "NULLABLE"}], [[7]])}).start()
    try:
        BigQueryWarehouse(project="acme-prod", dataset="lead_scoring").with_client_factory(fake.client).ensure_tables()
        sent = fake.queries()
    finally:
        fake.stop()
    assert not any(s.startswith(f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE}") for s in sent)
    [view] = [i for i, s in enumerate(sent) if s.startswith(f"CREATE OR REPLACE VIEW {LEDGER_TABLE} AS")]
    tables = [
        i
        for i, s in enumerate(sent)
        if s.startswith(
            ("CREATE TABLE IF NOT EXISTS lead_scores ", f"CREATE TABLE IF NOT EXISTS {SHADOW_SCORES_TABLE} ")
        )
    ]
    assert len(tables) == 2 and max(tables) < view
    for statement in sent:
        sqlglot.parse_one(statement, read="bigquery")
    [bq] = bigquery_sink_configs(ConnectorSettings())
    mapping = dict(pair.split(":") for pair in bq["config"]["topic2table.map"].split(","))
    assert mapping["lead_scores_shadow"] == SHADOW_SCORES_TABLE and mapping["lead_scores"] == "lead_scores"
