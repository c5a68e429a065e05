"""The latency probe reads the scores topic in the profile's format (issue 28 #5): JSON locally, Schema Registry
Avro (magic byte 0 + 4-byte schema id + Avro body) in Confluent Cloud, where `json.loads` read nothing."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime

import fastavro
import pytest

from lead_scoring.contract.schemas import score_avro_schema
from lead_scoring.monitoring.latency import decode_score
from lead_scoring.monitoring.resources import monitoring_settings
from lead_scoring.settings import Profile
from lead_scoring.streaming import topics as T
from lead_scoring.streaming.render import Dialect, RenderSettings, table_specs

SCORE = {
    "Id": "PROBE-abc-0",
    "_ObjectType": "Lead",
    "_EventType": "updated",
    "Lead_Score__c": 42,
    "Lead_Score_Reasons__c": "+visits",
    "Lead_Score_Model__c": "m1",
    "Lead_Grade__c": None,
    "features_hash": "h",
    "source_ts": datetime(2026, 12, 7, 5, 0, tzinfo=UTC),
    "scored_ts": datetime(2026, 12, 7, 5, 0, 1, tzinfo=UTC),
}


def wire_format(record: dict, schema_id: int = 100017) -> bytes:
    """What Confluent's Avro serializer (and Confluent Cloud Flink's 'avro-registry') puts in a record value."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(score_avro_schema()), record)
    return struct.pack(">bI", 0, schema_id) + body.getvalue()


def test_schema_registry_avro_scores_are_read() -> None:
    value = wire_format(SCORE)
    with pytest.raises(ValueError):
        json.loads(value)  # what the probe did before: every gcp score was skipped
    decoded = decode_score(value, "avro-registry")
    assert decoded is not None and decoded["Id"] == "PROBE-abc-0" and decoded["Lead_Score__c"] == 42
    assert decoded["scored_ts"] == SCORE["scored_ts"]


def test_unreadable_values_are_skipped_not_raised() -> None:
    value = wire_format(SCORE)
    assert decode_score(b"\x01" + value[1:], "avro-registry") is None  # not the wire format's magic byte
    assert decode_score(value[:12], "avro-registry") is None  # truncated body
    assert decode_score(json.dumps({"Id": "x"}).encode(), "avro-registry") is None
    assert decode_score(value, "json") is None
    assert decode_score(json.dumps({"Id": "x"}).encode(), "json") == {"Id": "x"}
    assert decode_score(None, "json") is None
    with pytest.raises(ValueError, match="value_format='xml'"):
        decode_score(b"x", "xml")


@pytest.mark.parametrize("profile,confluent", [(Profile.LOCAL, False), (Profile.CLUSTER, False), (Profile.GCP, True)])
def test_the_probe_reads_the_format_the_pipeline_writes(profile: Profile, confluent: bool) -> None:
    spec = table_specs(RenderSettings(Dialect.CONFLUENT if confluent else Dialect.FLINK, "v", "http://m"))[
        T.LEAD_SCORES
    ]
    written = spec.confluent_format if confluent else spec.flink_format
    assert monitoring_settings(profile).scores_format == written


def test_the_contract_schema_has_the_score_tables_columns_in_order() -> None:
    """Flink derives the registered writer schema from the score table's columns: same names, order and
    nullability as the contract's Avro schema, so the latter reads the body."""
    spec = table_specs(RenderSettings(Dialect.CONFLUENT, "v", "http://m"))[T.LEAD_SCORES]
    fields = score_avro_schema()["fields"]
    assert [c.name for c in spec.columns] == [f["name"] for f in fields]
    for column, field in zip(spec.columns, fields, strict=True):
        assert column.type.endswith("NOT NULL") == (not isinstance(field["type"], list)), column.name
