"""Erasure on a real DuckDB file: every row of the Id goes from every table we own, the CRM's score is cleared,
the register keeps only a keyed hash, and records of the Id still in Kafka never come back."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat

import dagster as dg
import pandas as pd
import pytest
from typer.testing import CliRunner

from lead_scoring.contract import FIELD_NAMES
from lead_scoring.contract.fields import FieldType
from lead_scoring.crm.batches import Message
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.writeback import CLEARED_FIELDS, LocalCrmWriter, WritebackHandler
from lead_scoring.lifecycle import erasure
from lead_scoring.lifecycle.erasure import (
    NO_LEAD_ROWS,
    ErasureIncomplete,
    ErasureKey,
    ErasureRegister,
    erasable_tables,
    erase_leads,
    erasure_key,
    erasure_secret,
)
from lead_scoring.settings import ConfigurationError, Profile
from lead_scoring.streaming.topics import ERASED_IDS
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring.warehouse.tables import TABLES, TableSpec
from lead_scoring_tests.fixtures.kafka_fakes import ProducingKafka, acknowledged_erased_ids

KEY = b"0123456789abcdef0123456789abcdef"
NOW_MS = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
GONE, KEPT = "00QERASEME000001", "00QKEEPME0000002"


def lead(rid: str, event: str = "created", modified: str = "2026-11-20T10:00:00.000Z", **extra) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": event,
        "LastModifiedDate": modified,
        "CreatedDate": "2026-11-20T10:00:00.000Z",
        "LeadSource": "Google",
        "Email": f"{rid}@example.com",
        "FirstName": "Ada",
        **extra,
    }


def score(rid: str, value: int = 50, scored_ts: int = NOW_MS, model: str = "v1", **extra) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "updated",
        "Lead_Score__c": value,
        "Lead_Score_Reasons__c": "+reason",
        "Lead_Score_Model__c": model,
        "source_ts": scored_ts - 40,
        "scored_ts": scored_ts,
        **extra,
    }


def msg(topic: str, value: dict | bytes, offset: int, key: str | None = None) -> Message:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    k = key if key is not None else value["Id"]
    return Message(topic, 0, offset, k.encode(), raw, NOW_MS)


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))


@pytest.fixture
def register(warehouse) -> ErasureRegister:
    return ErasureRegister(warehouse, KEY, acknowledged_erased_ids())


def stream_of(rid: str, offset: int = 0) -> list[Message]:
    """Everything the pipeline carries about one lead: events, a bad record, scores, a shadow score."""
    return [
        msg("input_raw", lead(rid), offset),
        msg("input_raw", lead(rid, "updated", "2026-11-27T10:00:00.000Z", IsConverted=True), offset + 1),
        msg("input_raw", {**lead(rid), "Total_Visits__c": "many"}, offset + 2),  # rejected, payload holds the Id
        msg("lead_scores", score(rid, 40, NOW_MS - 2000), offset),
        msg("lead_scores", score(rid, 45, NOW_MS - 1000, Lead_Grade__c="B"), offset + 1),
        msg("lead_scores_shadow", score(rid, 47, NOW_MS - 1000, model="v2"), offset),
    ]


def fill(warehouse: DuckDBWarehouse, register: ErasureRegister, *ids: str) -> None:
    """Every table we own holds rows of `ids`: raw, rejected, scores, ledger, local CRM, writeback errors."""
    sink = SinkHandler(warehouse, register=register)
    for i, rid in enumerate(ids):
        sink.handle(stream_of(rid, 10 * i))
        bad_score = msg("lead_scores", {**score(rid), "Lead_Score__c": "high"}, 10 * i + 1)
        WritebackHandler(LocalCrmWriter(warehouse), warehouse, register=register).handle(
            [msg("lead_scores", score(rid, 45, NOW_MS - 1000), 10 * i), bad_score]
        )  # -> crm_writeback_errors
        sink.handle([bad_score])  # -> worker_quarantine
    # the challenger's scores as a managed sink lands them (gcp: the BigQuery sink; the ledger view reads them)
    stamp = pd.Timestamp(NOW_MS, unit="ms", tz="UTC")
    warehouse.append(
        "lead_scores_shadow",
        pd.DataFrame(
            [
                {
                    "Id": rid,
                    "_ObjectType": "Lead",
                    "_EventType": "updated",
                    "Lead_Score__c": 50,
                    "Lead_Score_Model__c": "m2",
                    "source_ts": stamp,
                    "scored_ts": stamp,
                    "_source": "stream",
                }
                for rid in ids
            ]
        ),
    )
    # a rejected record without a key: only its payload carries the Id
    warehouse.append(
        "rejected_leads",
        pd.DataFrame(
            [{"Id": None, "payload": json.dumps(lead(ids[0]))[:-1], "reason": "not valid JSON", "_source": "stream"}]
        ),
    )


def cells_mentioning(warehouse: DuckDBWarehouse, rid: str) -> dict[str, int]:
    """Rows of every table in TABLES where ANY column's text contains `rid` (not just the Id column)."""
    found = {}
    for name in TABLES:
        frame = warehouse.query(f"SELECT * FROM {name}")
        hits = frame.astype(str).apply(lambda col: col.str.contains(rid, regex=False)).any(axis=1).sum()
        if hits:
            found[name] = int(hits)
    return found


def test_every_table_is_either_erased_or_explains_why_it_holds_no_lead_rows():
    erased = {s.name for s in erasable_tables()}
    assert erased | set(NO_LEAD_ROWS) == set(TABLES)
    assert not erased & set(NO_LEAD_ROWS)
    for name in NO_LEAD_ROWS:
        assert "Id" not in TABLES[name].column_names and "payload" not in TABLES[name].column_names
    assert {
        "crm_leads_raw",
        "rejected_leads",
        "lead_scores",
        "crm_leads",
        "crm_writeback_errors",
        "lead_score_history",
        "lead_scores_shadow",
    } <= erased
    # in BigQuery the ledger is a view over lead_scores and lead_scores_shadow: erased there, never DELETEd from
    assert {s.name for s in erasable_tables("bigquery")} == erased - {"lead_score_history"}


def test_erase_leaves_no_row_with_the_id_anywhere_and_keeps_everyone_else(warehouse, register):
    fill(warehouse, register, GONE, KEPT)
    before = cells_mentioning(warehouse, GONE)
    assert set(before) == {s.name for s in erasable_tables()}  # the Id really was everywhere
    kept_before = cells_mentioning(warehouse, KEPT)

    report = erase_leads([GONE], warehouse, register, crm=LocalCrmWriter(warehouse))

    assert cells_mentioning(warehouse, GONE) == {}
    assert cells_mentioning(warehouse, KEPT) == kept_before
    assert report.ids == 1 and report.newly_registered == 1
    assert report.rows_deleted == {
        "crm_leads_raw": 2,
        "rejected_leads": 2,
        "lead_scores": 2,
        "crm_leads": 1,
        "crm_writeback_errors": 1,
        "worker_quarantine": 1,
        "lead_score_history": 3,
        "lead_scores_shadow": 1,
    }
    assert report.crm_target == "crm_leads" and report.crm_cleared == 1 and report.crm_failures == []
    assert GONE not in report.summary()
    # idempotent: again, nothing to delete, still registered once
    again = erase_leads([GONE], warehouse, register)
    assert again.total_rows == 0 and again.newly_registered == 0


def test_erased_leads_leave_all_future_training_data(warehouse, register):
    from lead_scoring.training.queries import training_data_sql

    fill(warehouse, register, GONE, KEPT)
    assert GONE in set(warehouse.query(training_data_sql(0.5))["Id"])
    erase_leads([GONE], warehouse, register)
    assert set(warehouse.query(training_data_sql(0.5))["Id"]) == {KEPT}


def test_a_new_table_with_an_id_column_is_erased_without_touching_the_erasure_code(warehouse, register, monkeypatch):
    spec = TableSpec("lead_notes", (("Id", FieldType.STRING), ("note", FieldType.STRING)), "a table added later")
    monkeypatch.setitem(TABLES, "lead_notes", spec)
    warehouse.append("lead_notes", pd.DataFrame({"Id": [GONE, KEPT], "note": ["a", "b"]}))
    report = erase_leads([GONE], warehouse, register)
    assert report.rows_deleted["lead_notes"] == 1
    assert warehouse.query("SELECT Id FROM lead_notes")["Id"].tolist() == [KEPT]


def test_the_register_holds_only_a_keyed_hash(warehouse, register):
    erase_leads([GONE], warehouse, register)
    frame = warehouse.query("SELECT * FROM erasure_register")
    assert list(frame.columns) == ["id_hash", "trigger", "erased_at"]
    assert frame["id_hash"].tolist() == [hmac.new(KEY, GONE.encode(), hashlib.sha256).hexdigest()]
    assert frame["id_hash"][0] != hashlib.sha256(GONE.encode()).hexdigest()  # not a plain (guessable) hash
    assert frame["trigger"].tolist() == ["erase request"]
    assert cells_mentioning(warehouse, GONE) == {}
    assert register.erased([GONE, KEPT, None]) == {GONE}
    assert ErasureRegister(warehouse, b"another key " * 3).erased([GONE]) == set()


def test_replayed_records_of_an_erased_id_are_dropped_by_sink_and_writeback(warehouse, register):
    fill(warehouse, register, GONE, KEPT)
    erase_leads([GONE], warehouse, register)
    # Kafka still holds the lead's records (retention): the sink and the writeback read them again
    counts = SinkHandler(warehouse, register=register).handle(stream_of(GONE) + stream_of("00QNEWLEAD000003", 20))
    assert counts["erased_dropped"] == 6 and counts["raw"] == 2 and counts["history"] == 3
    writeback = WritebackHandler(LocalCrmWriter(warehouse), warehouse, register=register)
    counts = writeback.handle([msg("lead_scores", score(GONE, 99), 0), msg("lead_scores", score(KEPT, 12), 1)])
    assert counts["written"] == 1 and counts["erased_skipped"] == 1
    assert cells_mentioning(warehouse, GONE) == {}
    assert warehouse.query(f"SELECT Lead_Score__c FROM crm_leads WHERE Id = '{KEPT}'")["Lead_Score__c"][0] == 12


def test_a_deleted_event_through_the_sink_erases_the_lead(warehouse, register):
    fill(warehouse, register, GONE, KEPT)
    kept = cells_mentioning(warehouse, KEPT)
    deleted = msg("input_raw", lead(GONE, "deleted", "2026-11-29T10:00:00.000Z"), 100)
    late_score = msg("lead_scores", score(GONE, 61, NOW_MS), 100)  # same batch: must not land either
    sink = SinkHandler(warehouse, register=register)
    counts = sink.handle([deleted, late_score, msg("input_raw", lead("00QOTHER00000004"), 101)])
    assert counts["erased"] == 1 and counts["raw"] == 1
    assert cells_mentioning(warehouse, GONE) == {}
    assert cells_mentioning(warehouse, KEPT) == kept
    assert register.erased([GONE]) == {GONE}
    assert warehouse.query("SELECT trigger FROM erasure_register")["trigger"].tolist() == ["deleted event"]
    # the batch delivered again after a crash: the erasure runs again (idempotent), nothing lands
    again = sink.handle([deleted, late_score])
    assert again["erased"] == 1 and again["raw"] == 0 and cells_mentioning(warehouse, GONE) == {}


def test_a_score_written_while_its_lead_was_erased_is_taken_back(warehouse, register):
    class ErasedMidWrite(LocalCrmWriter):
        def write(self, records):
            erase_leads([GONE], warehouse, register)  # another process erases while this batch is in flight
            return super().write(records)

    handler = WritebackHandler(ErasedMidWrite(warehouse), warehouse, register=register)
    counts = handler.handle([msg("lead_scores", score(GONE, 70), 0), msg("lead_scores", score(KEPT, 20), 1)])
    assert counts["erased_cleared"] == 1
    assert warehouse.query("SELECT Id FROM crm_leads")["Id"].tolist() == [KEPT]


def test_erasure_that_finds_rows_left_behind_fails_loudly(tmp_path):
    class ConcurrentWriter(DuckDBWarehouse):
        """A sink without the register writes the lead's score again right after the delete."""

        def execute(self, sql, params=None):
            super().execute(sql, params)
            if sql.startswith("DELETE FROM lead_scores "):
                self.append(
                    "lead_scores",
                    pd.DataFrame([score(GONE)]).assign(scored_ts=pd.Timestamp.now(tz="UTC"), _source="stream"),
                )

    warehouse = ConcurrentWriter(path=str(tmp_path / "wh.duckdb"))
    register = ErasureRegister(warehouse, KEY, acknowledged_erased_ids())
    fill(warehouse, register, GONE)
    with pytest.raises(ErasureIncomplete, match=r"rows remain in lead_scores \(1\).*run the erasure again"):
        erase_leads([GONE], warehouse, register)


# ---- the key ---------------------------------------------------------------------------------------


def _secret(resource: ErasureKey) -> bytes:
    with dg.build_resources({"erasure_key": resource}) as built:
        return built.erasure_key.secret()


def test_local_key_is_created_once_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path))
    monkeypatch.delenv("LEAD_SCORING_ERASURE_KEY", raising=False)
    first = _secret(erasure_key(Profile.LOCAL))
    path = tmp_path / "secrets" / "erasure.key"
    assert path.exists() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) == 64 and _secret(erasure_key(Profile.LOCAL)) == first
    assert erasure_secret(Profile.LOCAL) == first  # the CLI and the workers read the same key


def test_gcp_key_comes_from_the_environment_and_errors_name_it(monkeypatch):
    monkeypatch.delenv("LEAD_SCORING_ERASURE_KEY", raising=False)
    with pytest.raises(Exception, match="LEAD_SCORING_ERASURE_KEY"):
        _secret(erasure_key(Profile.GCP))
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_ERASURE_KEY is not set"):
        erasure_secret(Profile.GCP)
    monkeypatch.setenv("LEAD_SCORING_ERASURE_KEY", "short")
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_ERASURE_KEY is too short .5 characters.") as info:
        _secret(erasure_key(Profile.GCP))
    assert "short'" not in str(info.value)
    monkeypatch.setenv("LEAD_SCORING_ERASURE_KEY", "x" * 40)
    assert _secret(erasure_key(Profile.LOCAL)) == b"x" * 40  # the variable wins locally too
    assert erasure_secret(Profile.GCP) == erasure_secret(Profile.LOCAL) == b"x" * 40
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_ERASURE_KEY is not set"):
        ErasureKey().secret()


# ---- the CLI, the sweep, Salesforce, BigQuery ----------------------------------------------------


def test_erase_cli_on_the_local_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path))
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "local")
    monkeypatch.delenv("LEAD_SCORING_ERASURE_KEY", raising=False)
    from lead_scoring.cli import app
    from lead_scoring.warehouse.definitions import local_warehouse_path

    warehouse = DuckDBWarehouse(path=local_warehouse_path())
    fill(warehouse, ErasureRegister(warehouse, erasure_secret(Profile.LOCAL), acknowledged_erased_ids()), GONE, KEPT)
    kafka = ProducingKafka()  # the profile's Kafka, where the CLI produces the erased Id for the statements
    monkeypatch.setattr(erasure, "kafka_of_profile", lambda _profile: kafka)
    result = CliRunner().invoke(app, ["erase", GONE])
    assert result.exit_code == 0, result.output
    assert kafka.out.sent == [(ERASED_IDS, GONE.encode(), GONE.encode())]
    assert (
        "lead_score_history: 3 row(s) deleted" in result.output and "CRM crm_leads: 1 score(s) cleared" in result.output
    )
    assert cells_mentioning(warehouse, GONE) == {} and cells_mentioning(warehouse, KEPT)


def test_the_sweep_erases_deleted_events_that_reached_the_warehouse_directly(warehouse, register):
    from lead_scoring.lifecycle.sweep import erasure_sweep_job

    fill(warehouse, register, GONE, KEPT)
    kafka = ProducingKafka()
    # what the BigQuery sink connector lands in the gcp profile: the deleted event as a raw row
    row = {name: lead(GONE, "deleted", "2026-11-29T10:00:00.000Z").get(name) for name in FIELD_NAMES}
    warehouse.append("crm_leads_raw", pd.DataFrame([row]).assign(_source="stream"))
    result = erasure_sweep_job.execute_in_process(
        resources={"warehouse": warehouse, "erasure_key": ErasureKey(key=KEY.decode()), "kafka": kafka}
    )
    assert result.success and result.output_for_node("erase_deleted_leads") == 1
    assert kafka.out.sent == [(ERASED_IDS, GONE.encode(), GONE.encode())]  # the statements drop its records now
    assert cells_mentioning(warehouse, GONE) == {} and cells_mentioning(warehouse, KEPT)
    assert register.erased([GONE]) == {GONE}


def test_salesforce_scores_are_cleared_with_bulk_null_through_the_writer(tmp_path, monkeypatch):
    from lead_scoring.crm.salesforce import SalesforceResource
    from lead_scoring_tests.crm import fake_salesforce
    from lead_scoring_tests.crm.fake_salesforce import FakeSalesforce

    for obj in ("Lead", "Contact"):
        monkeypatch.setitem(fake_salesforce.FIELDS, obj, fake_salesforce.FIELDS[obj] | {"Lead_Grade__c"})
    fake = FakeSalesforce("u", "p", "t", known_ids={"00Q000000000001", "003000000000002"}, polls_before_complete=0)
    resource = SalesforceResource(username="u", password="p", security_token="t").with_session_factory(
        fake.session, sleep=lambda s: None
    )
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    report = erase_leads(
        ["00Q000000000001", "003000000000002", "a0X000000000003"],
        wh,
        ErasureRegister(wh, KEY, acknowledged_erased_ids()),
        crm=resource.writer(),
    )
    assert report.crm_target == "salesforce" and report.crm_cleared == 2
    assert report.crm_failures[0][0] == "a0X000000000003" and "object type unknown" in report.crm_failures[0][1]
    uploads = [u.body.decode().splitlines() for u in fake.uploads()]
    assert uploads == [
        [f"Id,{','.join(CLEARED_FIELDS)}", "00Q000000000001,#N/A,#N/A,#N/A,#N/A"],
        [f"Id,{','.join(CLEARED_FIELDS)}", "003000000000002,#N/A,#N/A,#N/A,#N/A"],
    ]
    assert CLEARED_FIELDS == ("Lead_Score__c", "Lead_Score_Reasons__c", "Lead_Score_Model__c", "Lead_Grade__c")
