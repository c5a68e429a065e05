"""Erased Ids filtered by the statements, on the real stack: an erased lead that changes again is not scored.

On the session's shared pipeline (`scoring_pipeline`: its model server, statements, and the sink and writeback
workers as threads with the erasure register; the local CRM echoes its writes, as always). After the first scores
landed, one Lead and one Contact are erased through the erasure path (warehouse register + the `erased_ids`
topic); then a new change of each erased record and of a kept Lead and Contact go through `input_raw` together.
The kept records' changes are scored, written to the CRM and landed; the erased ones' are not scored at all (no
record on the score topics: both scoring statements dropped them, sql/erased.sql), so neither the CRM nor the
warehouse get them, and the audit does not call them missing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from lead_scoring.crm.replay import frame_records, replay
from lead_scoring.lifecycle.erasure import erase_leads
from lead_scoring.monitoring.audit import ERASED_NOT_SCORED, HOP_SCORES, AuditTopics, audit, read_window

pytestmark = pytest.mark.stack

# How long the kept lead's change takes to be scored, written and landed, at most (micro-batch waits, Flink hops)
SETTLE_S = 10.0


def _wait(check, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s"
        time.sleep(1)


def _changed(record: dict[str, Any]) -> dict[str, Any]:
    """A new change of `record` in the CRM: a feature moved, LastModifiedDate now."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        **record,
        "_EventType": "updated",
        "Total_Visits__c": float(record.get("Total_Visits__c") or 0) + 7.0,
        "LastModifiedDate": now,
    }


def test_an_erased_lead_that_changes_again_is_not_scored_written_or_landed(scoring_pipeline, tmp_path) -> None:
    product = scoring_pipeline
    kafka, warehouse, register = product.kafka, product.warehouse, product.register
    prefix, raw, scores = product.prefix, product.input_raw, product.score_topics
    events = product.events(20, seed=5, folder=tmp_path)  # 16 Leads, 4 Contacts
    records = {r["Id"]: r for r in frame_records(events)}
    # one erased and one kept record per object type: both scoring statements (leads, contacts) are exercised
    by_type = {t: sorted(i for i, r in records.items() if r["_ObjectType"] == t) for t in ("Lead", "Contact")}
    assert all(len(ids) >= 2 for ids in by_type.values()), {t: len(ids) for t, ids in by_type.items()}
    gone = {ids[0] for ids in by_type.values()}
    kept = {ids[1] for ids in by_type.values()}
    assert replay(kafka, list(records.values()), raw, rate=20.0).failed == 0

    def all_in_crm() -> bool:
        return product.in_table("crm_leads", set(records)) >= len(records)

    _wait(all_in_crm, 300, "every lead scored and written to the CRM")

    erased_at = datetime.now(UTC)
    report = erase_leads(sorted(gone), warehouse, register)
    assert report.total_rows > 0 and register.erased(gone | kept) == gone

    # a new change of all four, together: the CRM changed the erased leads again (or re-sent them)
    changes = [_changed(records[i]) for i in sorted(gone | kept)]
    assert replay(kafka, changes, raw, rate=0.0).failed == 0

    def kept_rescored() -> bool:
        rescored = warehouse.query(
            "SELECT Id FROM lead_score_history WHERE Id IN UNNEST(@ids) GROUP BY Id HAVING COUNT(*) >= 2",
            {"ids": sorted(kept)},
        )
        return len(rescored) == len(kept)

    _wait(kept_rescored, 180, "the kept leads' new changes scored and landed in the ledger")
    time.sleep(SETTLE_S)  # the erased records' changes had every chance to go the same way

    since_ms = int(erased_at.timestamp() * 1000)
    window = read_window(kafka, [raw, *scores], since_ms)
    assert {r.key.decode() for r in window[raw] if r.key} >= gone | kept  # all four changes went in
    scored = {r.key.decode() for t in scores for r in window[t] if r.key}
    assert kept <= scored
    assert not gone & scored  # the statements dropped them: nothing for any sink to write or land
    for table in ("crm_leads", "crm_leads_raw", "lead_score_history", "lead_scores"):
        rows = warehouse.query(f"SELECT COUNT(*) AS n FROM {table} WHERE Id IN UNNEST(@ids)", {"ids": sorted(gone)})
        assert int(rows["n"][0]) == 0, table
    in_crm = warehouse.query(
        "SELECT COUNT(DISTINCT Id) AS n FROM crm_leads WHERE Id IN UNNEST(@ids)", {"ids": sorted(kept)}
    )
    assert int(in_crm["n"][0]) == len(kept)

    # the audit accounts for the dropped records instead of calling them missing
    result = audit(kafka, warehouse, erased_at, topics=AuditTopics.prefixed(prefix), register=register, grace_s=0)
    assert result.hop(HOP_SCORES).missing == 0, result.verdict()
    assert result.excluded.get(ERASED_NOT_SCORED) == len(gone), result.excluded
