"""The local CRM echoes its writes like Salesforce: a written record comes back to input_raw, LastModifiedDate moved.

The stack test (`test_echo_stack.py`) shows the pipeline ending the loop; these check what is echoed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import KafkaError, KafkaException

from lead_scoring.contract import parse_record
from lead_scoring.crm.echo import CrmEcho, EchoingCrmWriter
from lead_scoring.crm.resources import LocalCrm, input_topic_of
from lead_scoring.crm.writeback import LocalCrmWriter
from lead_scoring.streaming.producer_watch import PRODUCER_STALL_S
from lead_scoring.warehouse.resources import DuckDBWarehouse


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.sent.append({"topic": topic, "key": key.decode(), "value": json.loads(value)})
        on_delivery(None, None)

    def flush(self, _timeout: float) -> int:
        return 0

    def poll(self, _timeout: float) -> int:
        return 0


class Msg:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def key(self) -> bytes:
        return self._key


class UnreachableProducer(RecordingProducer):
    """Kafka away: the first `refused` produce calls fail outright (full queue), the rest are reported failed."""

    def __init__(self, refused: int = 0) -> None:
        super().__init__()
        self.refused = refused
        self.reports: list[Any] = []

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        if self.refused:
            self.refused -= 1
            raise BufferError("Local: Queue full")
        self.reports.append((on_delivery, Msg(key)))

    def poll(self, _timeout: float) -> int:
        reports, self.reports = self.reports, []
        for callback, msg in reports:
            callback("KafkaError{code=_MSG_TIMED_OUT}", msg)
        return len(reports)


class NeverAcknowledges(RecordingProducer):
    """A stuck client (after a broker restart: no idempotence PID): takes every echo, acknowledges none."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Any] = []

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.held.append((on_delivery, Msg(key)))

    def purge(self) -> None:
        held, self.held = self.held, []
        for callback, msg in held:
            callback(KafkaError(KafkaError._PURGE_QUEUE), msg)


class Admin:
    def __init__(self, broker_up: bool) -> None:
        self.broker_up = broker_up

    def list_topics(self, topic: str, timeout: float) -> None:
        if not self.broker_up:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))


class FakeKafka:
    def __init__(self, broker_up: bool = True) -> None:
        self.out = RecordingProducer()
        self.broker_up = broker_up

    def producer(self, **_overrides: Any) -> RecordingProducer:
        return self.out

    def admin(self, **_overrides: Any) -> Admin:
        return Admin(self.broker_up)


def _row(rid: str, modified: str, event: str = "created", visits: float = 3.0) -> dict[str, Any]:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": event,
        "LastModifiedDate": pd.Timestamp(modified, tz="UTC"),
        "CreatedDate": pd.Timestamp("2026-11-01", tz="UTC"),
        "LeadSource": "Google",
        "Email": "x@example.com",
        "Total_Visits__c": visits,
        "_source": "stream",
        "_ingested_at": pd.Timestamp(modified, tz="UTC"),
    }


def _score(rid: str) -> dict[str, Any]:
    now = pd.Timestamp.now(tz="UTC")
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "updated",
        "Lead_Score__c": 70,
        "Lead_Score_Reasons__c": "+ visits",
        "Lead_Score_Model__c": "m1",
        "Lead_Grade__c": "B",
        "features_hash": "abc",
        "source_ts": now,
        "scored_ts": now,
    }


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))
    wh.ensure_tables()
    wh.append(
        "crm_leads_raw",
        pd.DataFrame(
            [
                _row("00Q01", "2026-11-02", visits=1.0),
                _row("00Q01", "2026-11-03", event="updated", visits=5.0),
                _row("00Q02", "2026-11-02"),
                _row("00Q02", "2026-11-04", event="deleted"),
            ]
        ),
    )
    return wh


def test_a_written_record_comes_back_with_its_features_and_a_new_last_modified_date(warehouse):
    kafka = FakeKafka()
    now = [0.0]
    echo = CrmEcho(
        warehouse,
        kafka,
        "p_input_raw",
        wait_s=1.0,
        clock=lambda: now[0],  # type: ignore[arg-type]
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    writer = EchoingCrmWriter(LocalCrmWriter(warehouse), echo, interval_s=3600)  # no second round here
    before = pd.Timestamp.now(tz="UTC")
    assert writer.write([_score("00Q01"), _score("00Q02"), _score("00Q09")]) == []
    assert warehouse.query("SELECT COUNT(*) AS n FROM crm_leads")["n"].iloc[0] == 3  # the CRM write itself
    assert writer.drain(10)  # the echo runs on its own thread, as Salesforce's source polls on its own
    [sent] = kafka.out.sent  # 00Q02 is deleted (no update), 00Q09 not landed yet
    assert sent["topic"] == "p_input_raw" and sent["key"] == "00Q01"
    record, errors = parse_record(sent["value"])
    assert errors == [] and record is not None
    assert record["Total_Visits__c"] == 5.0 and record["LeadSource"] == "Google"  # the latest CRM state
    assert record["_EventType"] == "updated"
    assert pd.Timestamp(record["LastModifiedDate"]) >= before.floor("ms")  # moved by the write
    assert echo.pending.keys() == {"00Q09"} and now[0] >= 1.0  # waited for it, then kept it pending
    warehouse.append("crm_leads_raw", pd.DataFrame([_row("00Q09", "2026-11-05")]))
    assert echo.echo([]) == 1 and kafka.out.sent[-1]["key"] == "00Q09" and not echo.pending


def test_a_record_that_never_lands_is_dropped_after_max_pending(warehouse):
    now = [0.0]
    echo = CrmEcho(
        warehouse,
        FakeKafka(),
        "input_raw",
        wait_s=0.0,
        max_pending_s=10.0,  # type: ignore[arg-type]
        clock=lambda: now[0],
        sleep=lambda s: None,
    )
    echo.echo(["00Q77"])
    assert echo.pending.keys() == {"00Q77"}
    now[0] = 11.0
    echo.echo([])
    assert not echo.pending


def test_the_local_crm_echoes_by_default_and_can_be_told_not_to(warehouse):
    kafka = FakeKafka()
    assert isinstance(LocalCrm().echoing_writer(warehouse, kafka, "input_raw"), EchoingCrmWriter)  # type: ignore[arg-type]
    assert isinstance(LocalCrm(echo=False).echoing_writer(warehouse, kafka), LocalCrmWriter)  # type: ignore[arg-type]
    assert input_topic_of(["t1_lead_scores", "t1_contact_scores"]) == "t1_input_raw"
    assert input_topic_of(["lead_scores"]) == "input_raw"
    # a writeback on hand-made topics has no pipeline input_raw: no echo, never into another pipeline's topic
    assert input_topic_of(["t_lscores"]) is None
    assert isinstance(LocalCrm().echoing_writer(warehouse, kafka, None), LocalCrmWriter)  # type: ignore[arg-type]


def test_an_echo_kafka_does_not_acknowledge_never_fails_the_write_and_is_sent_again_later(warehouse):
    """Salesforce accepts a write whether or not its source connector can reach Kafka: the CRM write succeeds
    (the writeback must not retry it, nor say anything but 'waiting for Kafka' from its own consumer), and the
    echo comes back with a later write."""
    warehouse.append("crm_leads_raw", pd.DataFrame([_row("00Q03", "2026-11-02")]))
    kafka = FakeKafka()
    kafka.out = UnreachableProducer(refused=1)  # type: ignore[assignment]
    echo = CrmEcho(warehouse, kafka, "input_raw", wait_s=0.0)  # type: ignore[arg-type]
    writer = EchoingCrmWriter(LocalCrmWriter(warehouse), echo, interval_s=3600)  # no retry round during the test
    assert writer.write([_score("00Q01"), _score("00Q03")]) == []  # one refused, one reported failed
    assert writer.drain(10)
    assert warehouse.query("SELECT COUNT(*) AS n FROM crm_leads")["n"].iloc[0] == 2
    assert echo.pending.keys() == {"00Q01", "00Q03"}
    kafka.out = RecordingProducer()  # Kafka is back
    echo._producer = None
    assert echo.echo([]) == 2 and not echo.pending
    assert sorted(m["key"] for m in kafka.out.sent) == ["00Q01", "00Q03"]
    assert echo.flush(1.0) == 0


@pytest.mark.parametrize("broker_up", [True, False])
def test_a_stuck_echo_client_is_replaced_and_what_it_held_echoed_again_unless_the_broker_is_away(warehouse, broker_up):
    now = [0.0]
    kafka = FakeKafka(broker_up)
    kafka.out = NeverAcknowledges()
    echo = CrmEcho(warehouse, kafka, "input_raw", wait_s=0.0, clock=lambda: now[0], sleep=lambda s: None)  # type: ignore[arg-type]
    assert echo.echo(["00Q01"]) == 1 and not echo.pending  # produced; never acknowledged
    now[0] = PRODUCER_STALL_S - 1
    echo.echo([])
    assert echo.replaced == 0  # waiting, not stuck yet
    stuck, kafka.out = kafka.out, RecordingProducer()
    now[0] = PRODUCER_STALL_S + 1
    echo.echo([])
    if broker_up:  # stuck: purged, and the new client echoes what it held
        assert echo.replaced == 1 and not stuck.held
        assert [m["key"] for m in kafka.out.sent] == ["00Q01"] and not echo.pending
    else:  # the broker away: waiting, the client kept
        assert echo.replaced == 0 and len(stuck.held) == 1 and not kafka.out.sent


def test_an_idle_echo_producer_is_not_taken_for_a_stuck_one(warehouse):
    now = [0.0]
    kafka = FakeKafka()
    echo = CrmEcho(warehouse, kafka, "input_raw", wait_s=0.0, clock=lambda: now[0], sleep=lambda s: None)  # type: ignore[arg-type]
    assert echo.echo(["00Q01"]) == 1  # acknowledged at once
    now[0] = 10 * PRODUCER_STALL_S  # a quiet hour, then a write
    kafka.out = NeverAcknowledges()
    echo._producer = None
    assert echo.echo(["00Q01"]) == 1
    now[0] += 1
    echo.echo([])
    assert echo.replaced == 0


class SlowWarehouse(DuckDBWarehouse):
    """The warehouse the echo reads is slow (the sink holds DuckDB's lock)."""

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        if "crm_leads_raw" in sql:
            time.sleep(1.5)
        return super().query(sql, params)


def test_the_crm_write_never_waits_for_its_echo(tmp_path):
    """The echo is Salesforce's source, not part of the write: waiting for it in the write path put seconds on
    every CRM row (benchmarks/user_flow.py); a written record not landed yet is looked for again next round."""
    warehouse = SlowWarehouse(path=str(tmp_path / "wh.duckdb"))
    warehouse.ensure_tables()
    kafka = FakeKafka()
    writer = EchoingCrmWriter(
        LocalCrmWriter(warehouse), CrmEcho(warehouse, kafka, "input_raw", wait_s=0.0), interval_s=0.2
    )  # type: ignore[arg-type]
    started = time.monotonic()
    for n in range(3):
        assert writer.write([_score(f"00Q1{n}")]) == []
    assert time.monotonic() - started < 1.5  # three writes, none behind a 1.5 s echo query
    warehouse.append("crm_leads_raw", pd.DataFrame([_row(f"00Q1{n}", "2026-11-02") for n in range(3)]))
    deadline = time.monotonic() + 20
    while len(kafka.out.sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(m["key"] for m in kafka.out.sent) == ["00Q10", "00Q11", "00Q12"]  # landed later: echoed then


def test_closing_the_writer_echoes_what_was_written_and_stops_its_thread(warehouse):
    """A stopping worker leaves no echo thread behind to send records after it (tests stop workers mid-stack)."""
    kafka = FakeKafka()
    writer = EchoingCrmWriter(
        LocalCrmWriter(warehouse), CrmEcho(warehouse, kafka, "input_raw", wait_s=0.0), interval_s=0.05
    )  # type: ignore[arg-type]
    assert writer.write([_score("00Q01")]) == []
    writer.close()
    assert [m["key"] for m in kafka.out.sent] == ["00Q01"]
    assert writer._thread is not None and not writer._thread.is_alive()
