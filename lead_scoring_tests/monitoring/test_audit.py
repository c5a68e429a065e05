"""The audit's bookkeeping without a broker: the window, what is followed, and missing / late / doubled per hop
(the whole audit runs on the real stack in test_audit_stack.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd
import pytest

from lead_scoring.contract import FEATURES, RESCORE_EVENT
from lead_scoring.contract.samples import PROBE_ID_PREFIX, probe_record
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.lifecycle.erasure import ErasureRegister, erase_leads
from lead_scoring.monitoring import audit as audit_module
from lead_scoring.monitoring.audit import (
    AuditReport,
    HopResult,
    KafkaRecord,
    _classify,
    _dlq_key,
    _tally,
    _unchanged,
    parse_since,
)
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.fixtures.kafka_fakes import acknowledged_erased_ids

NOW = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def test_since_takes_a_duration_ago_or_an_iso_time() -> None:
    assert parse_since("30m", NOW) == datetime(2026, 12, 7, 4, 30, tzinfo=UTC)
    assert parse_since("2h", NOW) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert parse_since("90s", NOW) == datetime(2026, 12, 7, 4, 58, 30, tzinfo=UTC)
    assert parse_since("2026-12-07T04:00:00", NOW) == datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    assert parse_since("2026-12-07T05:00:00+01:00", NOW) == datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("last tuesday", NOW)


def _rec(value: bytes | None, ts: int, key: bytes | None = None, headers=()) -> KafkaRecord:
    return KafkaRecord("input_raw", key, value, ts, tuple(headers))


def test_probes_demo_leads_and_rescore_requests_are_left_out_and_the_rest_classified() -> None:
    probe = probe_record(PROBE_ID_PREFIX + "1", NOW)  # a valid contract record; the others differ in Id only
    lead, demo = {**probe, "Id": "00Q1"}, {**probe, "Id": "DEMO-1"}
    inputs, excluded = _classify(
        [
            _rec(json.dumps(lead).encode(), 1_000, b"00Q1"),
            _rec(json.dumps(probe).encode(), 1_001),
            _rec(json.dumps(demo).encode(), 1_002),
            _rec(json.dumps({**lead, "_EventType": RESCORE_EVENT}).encode(), 1_003),
            _rec(b"\xff not json", 1_004, b"BAD-1"),
            _rec(json.dumps(lead).encode(), 9_999),  # after the window
        ],
        until_ms=5_000,
    )
    assert excluded == Counter({"probe or demo": 2, "rescore requests": 1})
    assert [(i.id, i.ts_ms, i.valid) for i in inputs] == [("00Q1", 1_000, True), ("BAD-1", 1_004, False)]
    assert inputs[1].payload_id is None and inputs[1].payload.startswith("\\xff not json")


def test_a_dead_letter_is_matched_by_the_id_in_its_payload_and_the_input_time() -> None:
    letter = {"payload": json.dumps({"Id": "00Q9", "Rating": "bad"}), "reason": "Rating: ...", "source_ts": 1_234}
    assert _dlq_key(KafkaRecord("dlq", None, json.dumps(letter).encode(), 5_000)) == ("00Q9", 1_234)
    letter = {"payload": "not json", "reason": "$: not valid JSON", "source_ts": 1_235}
    assert _dlq_key(KafkaRecord("dlq", None, json.dumps(letter).encode(), 5_000)) == (None, 1_235)


def test_missing_late_and_doubled_per_hop() -> None:
    now_ms = 100_000
    expected = {("a", 1_000): 1_000, ("b", 2_000): 2_000, ("c", 95_000): 95_000, ("d", 3_000): 3_000}
    arrived = Counter({("a", 1_000): 1, ("b", 2_000): 2, ("zzz", 1): 1})
    hop = _tally("lead_scores", expected, arrived, now_ms, grace_s=10.0)
    assert (hop.expected, hop.arrived, hop.missing, hop.late, hop.doubled) == (4, 2, 1, 1, 1)
    assert hop.examples == {"missing": ["d"], "doubled": ["b"]}
    assert not hop.ok
    replays = _tally("score topics", expected, arrived, now_ms, grace_s=10.0, replays_allowed=True)
    assert not replays.ok  # still one missing
    replays.missing = 0
    assert replays.ok  # a replay on an at-least-once topic is not a failure


def test_the_verdict_names_the_hop() -> None:
    good = HopResult("crm_leads_raw", expected=10, arrived=10)
    bad = HopResult("lead_score_history", expected=10, arrived=9, missing=1, examples={"missing": ["00Q1"]})
    report = AuditReport(NOW, NOW, 60.0, audited=10, excluded={}, hops=[good, bad])
    assert not report.ok and report.missing == 1
    assert report.verdict().endswith("lead_score_history: 1 missing (e.g. missing: 00Q1)")
    assert AuditReport(NOW, NOW, 60.0, 10, {}, [good]).verdict().startswith("every hop accounted for")


def test_hostile_payloads_are_followed_as_invalid_records() -> None:
    nested = b'{"Id": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    inputs, _ = _classify(
        [_rec(nested, 1, b"H1"), _rec(None, 2, b"H2"), _rec(b"", 3), _rec(b"\xff\xfe", 4)], until_ms=10
    )
    assert [(i.id, i.valid, i.payload_id) for i in inputs] == [
        ("H1", False, None),
        ("H2", False, None),
        (None, False, None),
        (None, False, None),
    ]


def test_an_invalid_record_is_expected_in_rejected_leads_exactly_as_the_sink_stores_it() -> None:
    # invalid UTF-8 and Avro bytes (NUL, high bytes): the audit once decoded these differently from the sink
    # and called rows that were there "missing"
    hostile = [b'{"Id": "H2", "Rating": "\xc3\x28"}', b"\x00\x00\x00\x00\x07\x0c00QH7\x02\xfe", b"x" * 20_000]
    inputs, _ = _classify([_rec(value, n, b"H%d" % n) for n, value in enumerate(hostile)], until_ms=10)
    for value, audited in zip(hostile, inputs, strict=True):
        message = SimpleNamespace(topic="input_raw", partition=0, offset=0, key=b"H", value=value)
        assert audited.payload == SinkHandler._rejected_row(message, "bad")["payload"]


def test_dead_letters_without_an_id_sent_in_the_same_millisecond_count_as_two() -> None:
    expected = {(None, 1_000): 1_000}
    both = _tally("dlq", expected, Counter({(None, 1_000): 2}), 100_000, 10.0, copies=Counter({(None, 1_000): 2}))
    assert (both.expected, both.arrived, both.missing, both.doubled) == (2, 2, 0, 0)
    one = _tally("dlq", expected, Counter({(None, 1_000): 1}), 100_000, 10.0, copies=Counter({(None, 1_000): 2}))
    assert (one.expected, one.arrived, one.missing, one.doubled) == (2, 1, 1, 0)


def test_a_record_with_the_features_of_an_earlier_one_is_not_expected_to_be_scored_again() -> None:
    """The scoring stage suppresses echoes (same Id, same features, new LastModifiedDate): the audit expects no
    score for them, whether the earlier twin is in the window or in the look-back before it."""
    lead = {**probe_record(PROBE_ID_PREFIX + "1", NOW), "Id": "00Q1"}
    echo = {**lead, "LastModifiedDate": "2026-12-07T10:00:05.000Z"}  # a written score moved it
    changed = {**echo, FEATURES[0]: "a value no earlier record had"}
    earlier, _ = _classify([_rec(json.dumps(lead).encode(), 500, b"00Q1")], until_ms=1_000)
    inputs, _ = _classify(
        [
            _rec(json.dumps(echo).encode(), 1_000, b"00Q1"),
            _rec(json.dumps(changed).encode(), 1_100, b"00Q1"),
            _rec(json.dumps(echo).encode(), 1_200, b"00Q1"),
        ],
        until_ms=5_000,
    )
    assert _unchanged(inputs, earlier) == {("00Q1", 1_000), ("00Q1", 1_200)}
    assert _unchanged(inputs, []) == {("00Q1", 1_200)}  # the twin of the first is outside the look-back


def test_records_of_erased_ids_are_dropped_by_the_statements_not_missing(tmp_path, monkeypatch) -> None:
    """The scoring statements drop records of Ids in the erased_ids topic (sql/erased.sql): the audit expects no
    score for them and counts them apart, while a kept lead's unscored record is still missing."""
    warehouse = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    register = ErasureRegister(warehouse, b"a test key of thirty-two or more characters", acknowledged_erased_ids())
    erase_leads(["00QGONE"], warehouse, register)
    ts = int(NOW.timestamp() * 1000) + 1_000
    record = probe_record(PROBE_ID_PREFIX + "1", NOW)
    raw = [
        _rec(json.dumps({**record, "Id": rid}).encode(), ts + i, rid.encode())
        for i, rid in enumerate(("00QGONE", "00QKEPT", "00QLOST"))
    ]
    kept_score = {
        "Id": "00QKEPT",
        "_ObjectType": "Lead",
        "_EventType": "updated",
        "Lead_Score__c": 50,
        "Lead_Score_Reasons__c": "+Lead Add Form",
        "Lead_Score_Model__c": "v1",
        "Lead_Grade__c": "B",
        "source_ts": ts + 1,
        "scored_ts": ts + 9,
    }
    window = {t: [] for t in ("input_raw", "dlq", "leads", "contacts", "lead_scores", "contact_scores")}
    window["input_raw"] = raw
    window["leads"] = [KafkaRecord("leads", r.key, b"", r.timestamp_ms) for r in raw]
    window["lead_scores"] = [KafkaRecord("lead_scores", b"00QKEPT", json.dumps(kept_score).encode(), ts + 9)]

    def read(_kafka, topics, since_ms, _timeout_s=120.0):
        return {t: [r for r in window[t] if r.timestamp_ms >= since_ms] for t in topics}

    monkeypatch.setattr(audit_module, "read_window", read)
    report = audit_module.audit(SimpleNamespace(), warehouse, NOW, crm_table=None, register=register, grace_s=0)
    scores = report.hop(audit_module.HOP_SCORES)
    assert scores.expected == 2 and scores.missing == 1, scores  # 00QKEPT arrived, 00QLOST missing, 00QGONE dropped
    assert scores.examples["missing"] == ["00QLOST"]
    assert report.excluded[audit_module.ERASED_NOT_SCORED] == 1


def test_a_write_suppressed_because_the_crm_holds_the_score_already_is_not_missing(tmp_path, monkeypatch) -> None:
    """The writeback does not write a score whose written fields the CRM holds (crm/writeback.py): the CRM row
    keeps the older change's source_ts and is current; a row holding another score is still missing."""
    warehouse = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    warehouse.ensure_tables()
    ts = int(NOW.timestamp() * 1000) + 1_000
    record = probe_record(PROBE_ID_PREFIX + "1", NOW)
    raw, scores, crm = [], [], []
    for i, (rid, later_score) in enumerate((("00QSAME", 50), ("00QDIFF", 70))):
        first = {**record, "Id": rid}
        changed = {**first, FEATURES[0]: f"a new value {i}", "LastModifiedDate": "2026-12-07T10:00:05.000Z"}
        for j, (rec, value) in enumerate(((first, 50), (changed, later_score))):
            at = ts + 10 * i + j
            raw.append(_rec(json.dumps(rec).encode(), at, rid.encode()))
            score = {
                "Id": rid,
                "_ObjectType": "Lead",
                "_EventType": "updated",
                "Lead_Score__c": value,
                "Lead_Score_Reasons__c": "+Lead Add Form",
                "Lead_Score_Model__c": "v1",
                "Lead_Grade__c": "B",
                "source_ts": at,
                "scored_ts": at + 5,
            }
            scores.append(KafkaRecord("lead_scores", rid.encode(), json.dumps(score).encode(), at + 5))
        crm.append(  # the CRM row of the first change's score: the second was not written
            {
                "Id": rid,
                "_ObjectType": "Lead",
                "Lead_Score__c": 50,
                "Lead_Score_Reasons__c": "+Lead Add Form",
                "Lead_Score_Model__c": "v1",
                "Lead_Grade__c": "B",
                "source_ts": pd.Timestamp(ts + 10 * i, unit="ms", tz="UTC"),
                "scored_ts": pd.Timestamp(ts + 10 * i + 5, unit="ms", tz="UTC"),
                "written_at": pd.Timestamp(ts + 10 * i + 6, unit="ms", tz="UTC"),
            }
        )
    warehouse.append("crm_leads", pd.DataFrame(crm))
    window = {t: [] for t in ("input_raw", "dlq", "leads", "contacts", "lead_scores", "contact_scores")}
    window["input_raw"] = raw
    window["leads"] = [KafkaRecord("leads", r.key, b"", r.timestamp_ms) for r in raw]
    window["lead_scores"] = scores

    def read(_kafka, topics, since_ms, _timeout_s=120.0):
        return {t: [r for r in window[t] if r.timestamp_ms >= since_ms] for t in topics}

    monkeypatch.setattr(audit_module, "read_window", read)
    report = audit_module.audit(SimpleNamespace(), warehouse, NOW, crm_table="crm_leads", grace_s=0)
    hop = report.hop(audit_module.HOP_CRM)
    assert (hop.expected, hop.arrived, hop.missing) == (2, 1, 1), hop
    assert hop.examples["missing"] == ["00QDIFF"]
