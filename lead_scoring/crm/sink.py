"""Warehouse sink: `input_raw` and the score topics -> `crm_leads_raw` / `rejected_leads` / `lead_scores` /
`lead_score_history`.

Micro-batches land with the warehouse's own bulk path (DuckDB INSERT, BigQuery load job + statement).
Every insert is idempotent: a row is only added when its natural key is not in the table yet, so a
batch re-read after a kill (written, not yet committed) lands nothing twice.

Natural keys: `crm_leads_raw` (Id, _EventType, LastModifiedDate, _source) — one CRM change event;
`lead_scores` (Id, _ObjectType, source_ts, features_hash, Lead_Score_Model__c, _source); `rejected_leads`
(payload, _source); `lead_score_history` (Id, Lead_Score_Model__c, source_ts, features_hash, shadow) — one
input record scored by one model (a crash replay re-scores it later; it is still that score, landed once).

The score ledger (`lead_score_history`) gets every score record: the champion's (`lead_scores`,
`contact_scores`, also kept in `lead_scores`) and the challenger's (`lead_scores_shadow`, `shadow = true`,
only in the ledger).

Probe leads (`contract.samples.PROBE_ID_PREFIX` Ids from the latency sensor) and streamed demo leads
(`DEMO_ID_PREFIX`, from `lead-scoring leads generate`) are TAGGED, not skipped: they land with `_source =
'probe'` / `'demo'` instead of `'stream'`, so the monitoring can read them, training never learns from
probes, and demo leads train only until real leads exist.

Re-score requests (input_raw records with `_EventType` = 'rescore': an unchanged record sent again so
a new champion scores it) are not CRM changes: they never land in `crm_leads_raw` (their scores do land).

Erasure: a `deleted` event erases its Id (`lifecycle.erasure.erase_leads`: every warehouse row, and the Id
into the erasure register); records of erased Ids (still in Kafka until retention removes them) are
dropped, and a record landed while its Id was being erased elsewhere is erased again right after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

import pandas as pd

from lead_scoring.contract import FIELD_NAMES, LEDGER_COLUMNS, RESCORE_EVENT, parse_record
from lead_scoring.contract.samples import is_demo, is_probe
from lead_scoring.crm.quarantine import (
    QUARANTINE_KEY,
    QUARANTINE_TABLE,
    decode_safely,
    key_text,
    payload_text,
    quarantine_frame,
    safe_text,
    with_storable_text,
)
from lead_scoring.crm.writeback import parse_score
from lead_scoring.lifecycle.erasure import TRIGGER_DELETED, ErasureRegister, erase_leads
from lead_scoring.settings import Profile
from lead_scoring.streaming.topics import SCORE_TOPICS, SHADOW_SCORE_TOPICS
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

STREAM_SOURCE = "stream"
PROBE_SOURCE = "probe"
DEMO_SOURCE = "demo"
RAW_KEY = ("Id", "_EventType", "LastModifiedDate", "_source")
# A score is identified by the input record it scored (its Kafka timestamp, and the feature values for two
# changes in one millisecond) and the model: a statement restored from a checkpoint re-scores what came after
# it, with a later scored_ts; those replays are the same score and land once.
SCORE_KEY = ("Id", "_ObjectType", "source_ts", "features_hash", "Lead_Score_Model__c", "_source")
REJECTED_KEY = ("payload", "_source")
LEDGER_KEY = ("Id", "Lead_Score_Model__c", "source_ts", "features_hash", "shadow")


def _source(record_id: Any) -> str:
    if is_probe(record_id):
        return PROBE_SOURCE
    return DEMO_SOURCE if is_demo(record_id) else STREAM_SOURCE


def _parse_lead(payload: bytes) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """A contract record of `input_raw` (its text made storable, as the pipeline scored it), or (None, reason)."""
    record, errors = parse_record(payload)
    if record is None:
        return None, "; ".join(str(e) for e in errors)
    return with_storable_text(record), None


class SinkHandler:
    """Micro-batch handler of the sink worker: split by topic, validate, erase, insert-if-absent.

    A score record that cannot be decoded or validated goes to `worker_quarantine`, an `input_raw` record to
    `rejected_leads`, each with its reason; so does a record whose write fails on its own (the worker isolates
    it, `crm.quarantine`).
    """

    worker_name = "sink"

    def __init__(
        self,
        warehouse: Warehouse,
        score_topics: Optional[Sequence[str]] = None,
        shadow_topics: Optional[Sequence[str]] = None,
        register: Optional[ErasureRegister] = None,
        *,
        profile: Optional[Profile] = None,
    ):
        """`register` filters erased Ids; without one, the `profile`'s register (one of the two is needed)."""
        if register is None and profile is None:  # refused here, not on the first batch
            raise TypeError("SinkHandler needs a register or the profile whose erasure register it reads")
        self.warehouse = warehouse
        self.score_topics = set(score_topics or SCORE_TOPICS)
        self.shadow_topics = set(SHADOW_SCORE_TOPICS if shadow_topics is None else shadow_topics)
        self.profile = profile
        self._register = register

    @property
    def register(self) -> ErasureRegister:
        if self._register is None:  # the profile's key, read on first use (never at construction)
            if self.profile is None:
                raise TypeError("SinkHandler needs a register or the profile whose erasure register it reads")
            self._register = ErasureRegister.for_profile(self.warehouse, self.profile)
        return self._register

    def handle(self, batch: Sequence[Any]) -> dict[str, int]:
        with self.warehouse.held():  # the batch's queries and writes in one turn at the warehouse
            return self._handle(batch)

    def _handle(self, batch: Sequence[Any]) -> dict[str, int]:
        raw, rejected, scores, ledger = [], [], [], []
        bad_scores: list[tuple[Any, str]] = []
        rescore_requests = 0
        for msg in batch:
            shadow = msg.topic in self.shadow_topics
            if shadow or msg.topic in self.score_topics:
                record, reason = decode_safely(parse_score, msg.value)
                if record is None:
                    bad_scores.append((msg, f"bad score record: {reason}"))
                    continue
                record["_source"] = _source(record["Id"])
                ledger.append(
                    {**{c: record.get(c) for c in LEDGER_COLUMNS}, "shadow": shadow, "_source": record["_source"]}
                )
                if not shadow:
                    scores.append(record)
                continue
            record, reason = decode_safely(_parse_lead, msg.value if msg.value is not None else b"")
            if record is None:
                rejected.append(self._rejected_row(msg, reason))
                continue
            if record.get("_EventType") == RESCORE_EVENT:  # a re-score request, no CRM change (promotion.rescore)
                rescore_requests += 1
                continue
            record["_source"] = _source(record["Id"])
            raw.append(record)

        counts = {"raw": 0, "rejected": 0, "scores": 0, "history": 0, "bad_scores": len(bad_scores)}
        if rescore_requests:
            counts["rescore_requests"] = rescore_requests
        batch_ids = {r["Id"] for r in raw + rejected + scores + ledger if r.get("Id")}
        deleted = {r["Id"] for r in raw if r.get("_EventType") == "deleted"}
        gone: set[str] = set()
        if batch_ids:
            gone = self.register.erased(batch_ids) | deleted
        if deleted:  # erased even if registered before: an erasure cut short by a crash is finished now
            counts["erased"] = erase_leads(deleted, self.warehouse, self.register, trigger=TRIGGER_DELETED).ids
        if gone:
            offered = len(raw) + len(rejected) + len(ledger)
            raw = [r for r in raw if r["Id"] not in gone]
            rejected = [r for r in rejected if r["Id"] not in gone]
            scores = [r for r in scores if r["Id"] not in gone]
            ledger = [r for r in ledger if r["Id"] not in gone]
            counts["erased_dropped"] = offered - len(raw) - len(rejected) - len(ledger)

        now = pd.Timestamp.now(tz="UTC")
        if raw:
            frame = pd.DataFrame.from_records(raw, columns=[*FIELD_NAMES, "_source"]).assign(_ingested_at=now)
            counts["raw"] = self.warehouse.insert_new("crm_leads_raw", frame, RAW_KEY)
        if rejected:
            frame = pd.DataFrame.from_records(rejected).assign(_ingested_at=now)
            counts["rejected"] = self.warehouse.insert_new("rejected_leads", frame, REJECTED_KEY)
        if scores:
            frame = pd.DataFrame.from_records(scores).assign(_ingested_at=now)
            counts["scores"] = self.warehouse.insert_new("lead_scores", frame, SCORE_KEY)
        if ledger:
            frame = pd.DataFrame.from_records(ledger).assign(_ingested_at=now)
            counts["history"] = self.warehouse.insert_new("lead_score_history", frame, LEDGER_KEY)
        counts["duplicates"] = (
            len(raw)
            + len(rejected)
            + len(scores)
            + len(ledger)
            - counts["raw"]
            - counts["rejected"]
            - counts["scores"]
            - counts["history"]
        )

        landed = batch_ids - gone
        if landed:
            late = self.register.erased(landed)  # erased by someone else while this batch was written
            if late:
                erase_leads(late, self.warehouse, self.register)  # already registered: only the deletes
                counts["erased_late"] = len(late)
        if bad_scores:
            messages, reasons = zip(*bad_scores, strict=True)
            counts["quarantined"] = self._quarantine_scores(messages, reasons)
            log.warning("sink: %d malformed score record(s) kept in %s", len(bad_scores), QUARANTINE_TABLE)
        return counts

    def quarantine(self, msg: Any, error: str) -> dict[str, int]:
        """Keep a record whose write failed on its own (permanent error): `rejected_leads` for `input_raw`,
        `worker_quarantine` for a score topic."""
        if msg.topic in self.score_topics or msg.topic in self.shadow_topics:
            return {"quarantined": self._quarantine_scores([msg], [error])}
        frame = pd.DataFrame.from_records([self._rejected_row(msg, f"could not be written: {error}")])
        self.warehouse.insert_new("rejected_leads", frame.assign(_ingested_at=pd.Timestamp.now(tz="UTC")), REJECTED_KEY)
        return {"rejected": 1, "quarantined": 1}

    def _quarantine_scores(self, messages: Sequence[Any], reasons: Sequence[str]) -> int:
        # idempotent by (worker, topic, partition, offset): a batch replayed after a crash adds nothing
        self.warehouse.insert_new(
            QUARANTINE_TABLE, quarantine_frame(self.worker_name, messages, reasons), QUARANTINE_KEY
        )
        return len(messages)

    @staticmethod
    def _rejected_row(msg: Any, reason: Optional[str]) -> dict[str, Any]:
        return {
            "Id": key_text(msg.key),
            "payload": payload_text(msg.value),
            "reason": safe_text(reason or ""),
            "_source": STREAM_SOURCE,
        }
