"""The full re-score on a real DuckDB file with a recording producer: what is re-scored, checkpoints, resume,
idempotency."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from lead_scoring.contract import RESCORE_EVENT
from lead_scoring.crm.batches import Message
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.production.api_budget import RESCORE_BURST, rescore_pace
from lead_scoring.promotion import assets as promotion_assets
from lead_scoring.promotion.comparison import compare, verdict
from lead_scoring.promotion.rescore import DONE, read_run, rescore, start_or_resume
from lead_scoring.settings import Profile
from lead_scoring.warehouse.resources import DuckDBWarehouse


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(
        self, topic: str, key: bytes, value: bytes, timestamp: int, on_delivery: Any, headers: Any = None
    ) -> None:
        self.sent.append(
            {
                "topic": topic,
                "key": key.decode(),
                "value": json.loads(value),
                "timestamp": timestamp,
                "headers": headers,
            }
        )
        on_delivery(None, None)

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0


class FakeKafka:
    def __init__(self) -> None:
        self.out = RecordingProducer()

    def producer(self, **_overrides: Any) -> RecordingProducer:
        return self.out


def _row(
    rid: str,
    modified: str,
    source: str = "stream",
    event: str = "created",
    converted: Any = None,
    object_type: str = "Lead",
) -> dict[str, Any]:
    return {
        "Id": rid,
        "_ObjectType": object_type,
        "_EventType": event,
        "LastModifiedDate": pd.Timestamp(modified, tz="UTC"),
        "CreatedDate": pd.Timestamp("2026-11-01", tz="UTC"),
        "LeadSource": "Google",
        "Email": "x@example.com",
        "Time_On_Website__c": 120.0,
        "IsConverted": converted,
        "_source": source,
        "_ingested_at": pd.Timestamp(modified, tz="UTC"),
    }


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    rows = [
        _row("00Q01", "2026-11-02"),
        _row("00Q01", "2026-11-03", event="updated"),  # open, latest counts
        _row("00Q02", "2026-11-02"),
        _row("00Q02", "2026-11-05", event="updated", converted=True),  # converted
        _row("00Q03", "2026-11-02"),
        _row("00Q03", "2026-11-06", event="deleted"),  # deleted
        _row("00Q04", "2026-11-02", converted=False),  # decided, not converted: still open
        _row("PROBE-1", "2026-11-02", source="probe"),  # probes never
        _row("SEED-1", "2026-11-02", source="seed"),  # the shipped sample: warehouse only
        _row("DEMO-1", "2026-11-02", source="demo"),  # demo leads are CRM records
        _row("00Q05", "2026-11-02", source="import:x.csv"),
        _row("00306", "2026-11-02", object_type="Contact"),
    ]
    wh.append("crm_leads_raw", pd.DataFrame(rows))
    return wh


def test_every_open_lead_and_contact_once_with_one_timestamp_and_the_rescore_field(warehouse):
    kafka = FakeKafka()
    run = start_or_resume(warehouse, "m2@t1", "m2")
    assert run.total == 5
    run = rescore(warehouse, kafka, run, topic="input_raw", chunk_size=100, max_in_flight=0)  # type: ignore[arg-type]
    sent = kafka.out.sent
    # open: not converted (00Q04 closed without converting is open), not deleted, no probe, no seed sample
    assert sorted(s["key"] for s in sent) == ["00306", "00Q01", "00Q04", "00Q05", "DEMO-1"]
    first = next(s for s in sent if s["key"] == "00Q01")["value"]
    assert first["LastModifiedDate"] == "2026-11-03T00:00:00.000Z"
    assert "IsConverted" not in first and first["Email"] == "x@example.com"  # the record as the CRM has it
    assert {s["timestamp"] for s in sent} == {run.source_ms}  # one Kafka timestamp for the whole run
    # the marker is a value of the record (it survives Confluent's statements, which drop Kafka headers)
    assert all(s["value"]["_EventType"] == RESCORE_EVENT and not s.get("headers") for s in sent)
    assert run.status == DONE and run.produced == 5
    stored = read_run(warehouse, "m2@t1")
    assert stored is not None and stored.done and stored.cursor is None and stored.produced == 5


def test_a_stopped_run_resumes_after_its_checkpoint_and_a_finished_one_produces_nothing(warehouse):
    kafka = FakeKafka()
    run = start_or_resume(warehouse, "m2@t2", "m2")
    chunks = iter([False, True])
    run = rescore(
        warehouse,
        kafka,
        run,
        topic="input_raw",
        chunk_size=2,
        max_in_flight=0,  # type: ignore[arg-type]
        should_stop=lambda: next(chunks, True),
    )
    assert run.produced == 2 and not run.done
    again = start_or_resume(warehouse, "m2@t2", "m2")  # a new process: from the checkpoint
    assert again.produced == 2 and again.cursor == run.cursor and again.source_ms == run.source_ms
    rescore(warehouse, kafka, again, topic="input_raw", chunk_size=2, max_in_flight=0)  # type: ignore[arg-type]
    keys = [s["key"] for s in kafka.out.sent]
    assert len(keys) == len(set(keys)) == 5  # each open record once across the two calls
    before = len(kafka.out.sent)
    done = rescore(warehouse, kafka, start_or_resume(warehouse, "m2@t2", "m2"), topic="input_raw")  # type: ignore[arg-type]
    assert done.done and len(kafka.out.sent) == before
    with pytest.raises(ValueError, match="use another run id"):
        start_or_resume(warehouse, "m2@t2", "m3")


def test_the_sink_keeps_rescore_requests_out_of_crm_leads_raw(warehouse):
    record = {"Id": "00Q99", "_ObjectType": "Lead", "_EventType": "updated", "LastModifiedDate": "2026-11-03T00:00:00Z"}
    request = {**record, "LastModifiedDate": "2026-11-04T00:00:00Z", "_EventType": RESCORE_EVENT}
    msgs = [
        Message("input_raw", 0, 1, b"00Q99", json.dumps(request).encode(), 1, ()),
        Message("input_raw", 0, 2, b"00Q99", json.dumps(record).encode(), 1, ()),
    ]
    counts = SinkHandler(warehouse, profile=Profile.LOCAL).handle(msgs)
    assert counts["rescore_requests"] == 1 and counts["raw"] == 1
    landed = warehouse.query("SELECT _EventType FROM crm_leads_raw WHERE Id = '00Q99'")
    assert list(landed["_EventType"]) == ["updated"]


def _pairs(champion: list[int], challenger: list[int], outcomes: list[Any], grades=("A", "B")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Id": [f"00Q{i}" for i in range(len(champion))],
            "source_ts": 0,
            "champion_version": "m1",
            "champion_score": champion,
            "champion_grade": [grades[i % 2] for i in range(len(champion))],
            "challenger_score": challenger,
            "challenger_grade": [grades[(i + (i % 3 == 0)) % 2] for i in range(len(champion))],
            "converted": outcomes,
        }
    )


def test_comparison_metrics_side_by_side_and_the_gate():
    outcomes = [True, False] * 150
    champion = [60 if o else 40 for o in outcomes]  # separates perfectly, badly calibrated
    challenger = [99 if o else 1 for o in outcomes]  # separates perfectly, well calibrated (ECE 0.01)
    result = compare(_pairs(champion, challenger, outcomes), "m2")
    assert result.pairs == result.with_outcome == 300 and result.converted == 150
    assert result.champion.roc_auc == result.challenger.roc_auc == 1.0
    assert result.challenger.brier < result.champion.brier
    assert 0 < result.grade_agreement < 1 and sum(sum(r.values()) for r in result.flips.values()) == 300
    assert verdict(result, 200, 0.0, 0.0)[0]
    passed, why, _ = verdict(result, 500, 0.0, 0.0)
    assert not passed and "not enough evidence" in why and "min_outcomes" in why
    worse = compare(_pairs(challenger, champion, outcomes), "m2")  # the roles swapped: challenger worse
    passed, why, _ = verdict(worse, 200, 0.0, 0.0)
    assert not passed and "Brier" in why
    unknown = compare(_pairs(champion, challenger, [None] * 300), "m2")
    assert unknown.with_outcome == 0 and not verdict(unknown, 1, 0.0, 0.0)[0]


class FakeClock:
    """time.monotonic and time.sleep of a run: sleeping advances the clock, producing takes no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_paced_run_produces_in_bursts_at_the_rate_it_is_given(warehouse):
    kafka = FakeKafka()
    clock = FakeClock()
    run = start_or_resume(warehouse, "m2@paced", "m2")
    rescore(
        warehouse,
        kafka,  # type: ignore[arg-type]
        run,
        topic="input_raw",
        chunk_size=100,
        max_in_flight=0,
        max_rate=0.5,
        burst=2,
        sleep=clock.sleep,
        clock=clock,
    )
    # 5 records at 0.5/s in bursts of 2: a pause after the 2nd and the 4th (4 s and 4 s), the tail of 1 unpaced
    assert len(kafka.out.sent) == 5
    assert clock.sleeps == [4.0, 4.0] and clock.now == 8.0


def _gcp_org(monkeypatch, **env: str) -> None:
    for name in (
        "LEAD_SCORING_SALESFORCE_DAILY_API_REQUESTS",
        "LEAD_SCORING_RESCORE_RECORDS_PER_CALL",
        "LEAD_SCORING_LOCAL_CRM_DAILY_API_REQUESTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEAD_SCORING_SALESFORCE_LICENSES", "100")
    monkeypatch.setenv("LEAD_SCORING_SALESFORCE_EDITION", "Enterprise")
    monkeypatch.setenv("LEAD_SCORING_RESCORE_API_SHARE", "0.2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_the_gcp_pace_keeps_the_writebacks_within_the_share_of_the_orgs_allocation(monkeypatch):
    _gcp_org(monkeypatch, LEAD_SCORING_RESCORE_RECORDS_PER_CALL="1")
    pace = rescore_pace(Profile.GCP, 48_000)
    # 100 licences: 200,000 calls/24 h; 20 % of it; one call per write and 1/1,000 for reading the echo back
    assert pace.allocation == 200_000 and pace.calls_per_record == pytest.approx(1.001)
    assert pace.rate == pytest.approx(0.2 * 200_000 / 1.001 / 86_400)  # 0.46 records/s
    assert pace.rate * 86_400 * pace.calls_per_record == pytest.approx(40_000)  # 24 h at the pace: the share
    assert pace.daily_fraction == pytest.approx(0.2, abs=1e-4)  # 48,048 calls: the run spans more than a day
    assert pace.line().startswith("re-scoring 48,000 leads at 0.5/s, ~28.8 h, uses 20.0% of the daily allowance")
    # the org's own /limits Max wins over the edition formula; an operator's max_rate only lowers the pace
    monkeypatch.setenv("LEAD_SCORING_SALESFORCE_DAILY_API_REQUESTS", "1000000")
    assert rescore_pace(Profile.GCP, 48_000).allocation == 1_000_000
    assert rescore_pace(Profile.GCP, 48_000, max_rate=0.1).rate == 0.1
    assert rescore_pace(Profile.GCP, 48_000, max_rate=1e6).rate == rescore_pace(Profile.GCP, 48_000).rate


def test_the_local_crm_paces_with_its_own_limits(monkeypatch):
    _gcp_org(monkeypatch, LEAD_SCORING_LOCAL_CRM_DAILY_API_REQUESTS="86400")
    pace = rescore_pace(Profile.LOCAL, 1_000)
    # 86,400 writes/24 h, 20 %: 0.2 micro-batch writes/s of 500 records, no call for the echo
    assert pace.crm == "local CRM" and pace.rate == pytest.approx(0.2 * 500)
    assert rescore_pace(Profile.CLUSTER, 1_000) == pace


def test_the_full_rescore_asset_is_paced_and_reports_the_pace(monkeypatch, warehouse):
    _gcp_org(monkeypatch, LEAD_SCORING_RESCORE_RECORDS_PER_CALL="1")
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "gcp")
    calls: list[dict[str, Any]] = []

    def recorded(warehouse, kafka, run, **kw):
        calls.append(kw)
        return run

    monkeypatch.setattr(promotion_assets, "rescore", recorded)

    class Store:
        def repository(self) -> Any:
            return self

        def production_pointer(self) -> dict[str, str]:
            return {"version": "m2", "promoted_at": "t9"}

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize_to_memory(
        [promotion_assets.full_rescore],
        instance=instance,
        resources={"warehouse": warehouse, "kafka": FakeKafka(), "model_store": Store()},
        run_config={"ops": {"full_rescore": {"config": {"max_rate": 1000.0}}}},  # above the budget: capped
    )
    assert result.success
    expected = rescore_pace(Profile.GCP, 5)
    assert calls[0]["max_rate"] == pytest.approx(expected.rate) and calls[0]["burst"] == RESCORE_BURST
    metadata = result.asset_materializations_for_node("full_rescore")[0].metadata
    assert metadata["pace_per_s"].value == round(expected.rate, 2)
    assert metadata["expected_hours"].value == round(5 / expected.rate / 3600, 2)
    assert "re-scoring 5 leads at 0.5/s" in metadata["pace"].value
    said = " ".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert "re-scoring 5 leads at 0.5/s" in said and "of the daily allowance" in said
