"""Every erasure produces its Ids to the compacted `erased_ids` topic the scoring statements filter on."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from typer.testing import CliRunner

from lead_scoring.cli import app
from lead_scoring.lifecycle import erasure
from lead_scoring.lifecycle.erased_ids import DELIVERY_TIMEOUT_MS, ErasedIdsNotPublished, ErasedIdsTopic
from lead_scoring.lifecycle.erasure import ErasureRegister, erase_leads
from lead_scoring.settings import ConfigurationError
from lead_scoring.streaming.topics import ERASED_IDS, EXTERNALLY_WRITTEN_TOPICS, TOPICS_BY_NAME
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.fixtures.kafka_fakes import AcknowledgingProducer, ProducingKafka

KEY = b"a test key of thirty-two or more characters"
GONE, OTHER = "00QERASED0000001", "00QERASED0000002"


def topic_on(kafka: ProducingKafka, **kw) -> ErasedIdsTopic:
    return ErasedIdsTopic(kafka, timeout_s=kw.pop("timeout_s", 30.0), sleep=lambda _s: None, **kw)


def test_the_register_topic_is_compacted_kept_forever_and_created_by_the_topics_asset_everywhere() -> None:
    spec = TOPICS_BY_NAME[ERASED_IDS]
    assert spec.config()["cleanup.policy"] == "compact" and spec.config()["retention.ms"] == "-1"
    assert not spec.pii  # Ids only, like the score topics
    assert ERASED_IDS in EXTERNALLY_WRITTEN_TOPICS  # no Flink table owns it in Confluent Cloud


def test_each_id_is_produced_keyed_by_itself_and_acknowledged() -> None:
    kafka = ProducingKafka()
    assert topic_on(kafka).publish([GONE, OTHER, GONE, ""]) == 2
    assert sorted(kafka.out.sent) == [(ERASED_IDS, i.encode(), i.encode()) for i in (GONE, OTHER)]
    assert kafka.overrides["message.timeout.ms"] == DELIVERY_TIMEOUT_MS  # a lost delivery is reported, not awaited


def test_a_transient_fault_is_retried_until_every_id_is_acknowledged() -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    kafka = ProducingKafka(AcknowledgingProducer(failures=[timed_out, None, timed_out]))
    assert topic_on(kafka).publish([GONE, OTHER]) == 2
    assert sorted(key for _topic, key, _value in kafka.out.sent) == [GONE.encode(), OTHER.encode()]


def test_a_full_local_queue_is_waited_out() -> None:
    kafka = ProducingKafka(AcknowledgingProducer(queue_full=2))
    assert topic_on(kafka).publish([GONE, OTHER]) == 2
    assert sorted(key for _topic, key, _value in kafka.out.sent) == [GONE.encode(), OTHER.encode()]


def test_transient_faults_that_outlast_the_timeout_fail_naming_the_topic_and_the_fix() -> None:
    away = KafkaError(KafkaError._ALL_BROKERS_DOWN)
    kafka = ProducingKafka(AcknowledgingProducer(always=away))
    with pytest.raises(ErasedIdsNotPublished, match=r"erased_ids.*Run the erasure again"):
        topic_on(kafka, timeout_s=0.2).publish([GONE])
    assert kafka.out.sent == []


def test_a_non_retriable_error_fails_at_once() -> None:
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    kafka = ProducingKafka(AcknowledgingProducer(failures=[denied]))
    with pytest.raises(ErasedIdsNotPublished, match=r"streaming_topics.*WRITE"):
        topic_on(kafka).publish([GONE])


def test_erasing_produces_the_ids_again_even_when_already_registered(tmp_path) -> None:
    warehouse = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    kafka = ProducingKafka()
    register = ErasureRegister(warehouse, KEY, topic_on(kafka))
    erase_leads([GONE], warehouse, register)
    erase_leads([GONE, OTHER], warehouse, register)  # a run that failed half-way is completed by the next
    keys = [key.decode() for _topic, key, _value in kafka.out.sent]
    assert keys == [GONE, GONE, OTHER]
    assert register.erased([GONE, OTHER, "00QKEPT000000001"]) == {GONE, OTHER}


def test_a_register_without_the_topic_refuses_to_record_an_erasure(tmp_path) -> None:
    warehouse = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    register = ErasureRegister(warehouse, KEY)  # lookups only (audit, writeback)
    assert register.erased([GONE]) == set()
    with pytest.raises(ConfigurationError, match="erased_ids"):
        erase_leads([GONE], warehouse, register)


def test_the_erase_cli_reports_an_id_the_statements_could_not_be_told_of(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path))
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "local")
    monkeypatch.delenv("LEAD_SCORING_ERASURE_KEY", raising=False)
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    monkeypatch.setattr(
        erasure, "kafka_of_profile", lambda _profile: ProducingKafka(AcknowledgingProducer(always=denied))
    )
    result = CliRunner().invoke(app, ["erase", "--keep-crm", GONE])
    assert result.exit_code == 1, result.output
    assert "erasure incomplete" in result.output and "erased_ids" in result.output
