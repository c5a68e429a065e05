"""Hostile input, as a property: whatever bytes arrive, a worker's handler neither raises nor loses the next record.

Each example is a batch of one structurally hostile record followed by a valid one, handed to the real handler
on a real DuckDB file (the local CRM for the writeback). Asserted for every example: no exception escapes
`handle`, the hostile record is kept with a reason (`rejected_leads`, `worker_quarantine`,
`crm_writeback_errors`), and the valid record after it lands.
"""

from __future__ import annotations

import itertools
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lead_scoring.contract import LEAD_FIELDS
from lead_scoring.contract.fields import FieldType
from lead_scoring.crm.batches import Message
from lead_scoring.crm.quarantine import key_text, payload_text
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.writeback import LocalCrmWriter, WritebackHandler
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.fixtures.kafka_fakes import acknowledged_erased_ids

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
SCORES = "lead_scores"
_offsets = itertools.count()  # one warehouse per test: every example's records have their own offsets


def _lead(rid: str) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "created",
        "LastModifiedDate": "2026-11-20T10:00:00.000Z",
        "CreatedDate": "2026-11-20T10:00:00.000Z",
        "LeadSource": "Google",
        "Email": "a@b.c",
    }


def _score(rid: str) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "updated",
        "Lead_Score__c": 42,
        "Lead_Score_Reasons__c": "+Lead Add Form",
        "Lead_Score_Model__c": "m1",
        "source_ts": 1_763_900_000_000,
        "scored_ts": 1_763_900_000_040,
    }


def _with(record: dict, field: str, literal: str) -> bytes:
    """`record` as JSON with `field` set to a raw JSON literal (NaN, 1e999, a 5000-digit integer...)."""
    text = json.dumps({**record, field: "__HOLE__"})
    return text.replace('"__HOLE__"', literal).encode()


_NEVER_A_FIELD_VALUE = st.one_of(  # no contract field takes an array or an object
    st.lists(st.integers(), max_size=5).map(json.dumps),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps),
)
_NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
_HUGE_INT = st.one_of(st.integers(309, 4200), st.integers(4301, 20_000)).map(lambda digits: "9" * digits)


def _structural() -> st.SearchStrategy[bytes]:
    """Hostile whatever the topic: nesting, binary, Avro framing, nothing, non-UTF-8."""
    return st.one_of(
        st.integers(1_000, 120_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1_000, 60_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.binary(max_size=400),  # never a valid record: not UTF-8, not JSON, or not an object with the fields
        st.tuples(st.integers(0, 2**31 - 1), st.binary(max_size=200)).map(  # Confluent Avro wire format
            lambda t: b"\x00" + struct.pack(">I", t[0]) + t[1]
        ),
        st.just(b""),
        st.sampled_from([b"null", b"[]", b"42", b'"text"', b"NaN", b"Infinity", b"true"]),
    )


def _invalid_utf8(record: dict) -> st.SearchStrategy[bytes]:
    text = json.dumps(record).encode()
    return st.tuples(st.integers(0, len(text)), st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])).map(
        lambda t: text[: t[0]] + t[1] + text[t[0] :]
    )


def hostile_leads() -> st.SearchStrategy[bytes]:
    lead = _lead("00QX")
    names = [f.name for f in LEAD_FIELDS]
    numeric = [f.name for f in LEAD_FIELDS if f.type in (FieldType.NUMBER, FieldType.INT)]
    return st.one_of(
        _structural(),
        _invalid_utf8(lead),
        st.tuples(st.sampled_from(names), _NEVER_A_FIELD_VALUE).map(lambda t: _with(lead, *t)),  # wrong types
        st.tuples(st.sampled_from(numeric), st.one_of(_NON_FINITE, _HUGE_INT)).map(lambda t: _with(lead, *t)),
        st.integers(1_001, 300_000).map(lambda n: json.dumps({**lead, "Email": "e" * n}).encode()),  # huge
        _NEVER_A_FIELD_VALUE.map(lambda v: json.dumps(lead)[:-1].encode() + f', "Id": {v}}}'.encode()),  # dup key
    )


def hostile_scores() -> st.SearchStrategy[bytes]:
    score = _score("00QX")
    return st.one_of(
        _structural(),
        _invalid_utf8(score),
        st.tuples(
            st.sampled_from(["Id", "_ObjectType", "Lead_Score__c", "scored_ts", "Lead_Score_Model__c"]),
            _NEVER_A_FIELD_VALUE,
        ).map(lambda t: _with(score, *t)),
        st.tuples(st.sampled_from(["Lead_Score__c", "scored_ts", "source_ts"]), st.one_of(_NON_FINITE, _HUGE_INT)).map(
            lambda t: _with(score, *t)
        ),
        st.integers(1_000, 100_000).map(lambda n: _with(score, "Lead_Score__c", "[" + "0," * n + "0]")),  # huge
        _NEVER_A_FIELD_VALUE.map(
            lambda v: json.dumps(score)[:-1].encode() + f', "Lead_Score__c": {v}}}'.encode()
        ),  # dup key
    )


KEYS = st.one_of(st.none(), st.binary(max_size=40), st.just(b"00QX"))


def _batch(topic: str, key: bytes | None, hostile: bytes | None, valid: dict) -> list[Message]:
    first = next(_offsets)
    return [
        Message(topic, 0, first, key, hostile, 1_763_900_000_000),
        Message(topic, 0, next(_offsets), valid["Id"].encode(), json.dumps(valid).encode(), 1_763_900_000_000),
    ]


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))


@pytest.fixture
def register(warehouse) -> ErasureRegister:
    return ErasureRegister(warehouse, b"a test key of thirty-two or more characters", acknowledged_erased_ids())


def _one(warehouse: DuckDBWarehouse, sql: str, **params) -> list:
    return warehouse.query(sql, params).iloc[:, 0].tolist()


@PROPERTY
@given(key=KEYS, hostile=hostile_leads(), n=st.integers(0, 10**9))
def test_the_sink_rejects_any_hostile_input_raw_record_and_lands_the_next(warehouse, register, key, hostile, n):
    sink = SinkHandler(warehouse, score_topics=[SCORES], shadow_topics=[], register=register)
    valid = _lead(f"00QV{n}")
    counts = sink.handle(_batch("input_raw", key, hostile, valid))
    assert counts["raw"] + counts["duplicates"] >= 1
    assert _one(warehouse, "SELECT Id FROM crm_leads_raw WHERE Id = @id", id=valid["Id"]) == [valid["Id"]]
    reasons = _one(
        warehouse, "SELECT reason FROM rejected_leads WHERE payload = @payload", payload=payload_text(hostile)
    )
    assert reasons and all(reasons), f"no reason kept for {hostile[:80]!r}"


@PROPERTY
@given(key=KEYS, hostile=st.one_of(hostile_scores(), st.none()), n=st.integers(0, 10**9))
def test_the_sink_quarantines_any_hostile_score_record_and_lands_the_next(warehouse, register, key, hostile, n):
    sink = SinkHandler(warehouse, score_topics=[SCORES], shadow_topics=[], register=register)
    valid = _score(f"00QV{n}")
    batch = _batch(SCORES, key, hostile, valid)
    sink.handle(batch)
    for table in ("lead_scores", "lead_score_history"):
        assert _one(warehouse, f"SELECT Id FROM {table} WHERE Id = @id", id=valid["Id"]) == [valid["Id"]]
    kept = warehouse.query(
        "SELECT Id, payload, error FROM worker_quarantine WHERE worker = 'sink' AND topic = @t "
        "AND kafka_partition = 0 AND kafka_offset = @o",
        {"t": SCORES, "o": batch[0].offset},
    )
    assert len(kept) == 1 and kept["error"][0].startswith("bad score record: ")
    assert kept["payload"][0] == payload_text(hostile) and kept["Id"][0] == key_text(key)


@PROPERTY
@given(key=KEYS, hostile=st.one_of(hostile_scores(), st.none()), n=st.integers(0, 10**9))
def test_the_writeback_keeps_any_hostile_score_record_and_writes_the_next(warehouse, register, key, hostile, n):
    writeback = WritebackHandler(LocalCrmWriter(warehouse), warehouse, register=register)
    valid = _score(f"00QV{n}")
    counts = writeback.handle(_batch(SCORES, key, hostile, valid))
    # the warehouse outlives an example: a repeated n finds its score in the CRM already (write suppressed)
    assert counts["written"] + counts.get("unchanged_skipped", 0) == 1 and counts["failed"] == 1
    assert _one(warehouse, "SELECT Id FROM crm_leads WHERE Id = @id", id=valid["Id"]) == [valid["Id"]]
    reasons = _one(
        warehouse, "SELECT reason FROM crm_writeback_errors WHERE payload = @payload", payload=payload_text(hostile)
    )
    assert reasons and all(r.startswith("bad score record: ") for r in reasons)
