"""The write-back echo loop, on the real stack: the local CRM echoes every write like Salesforce, the pipeline ends it.

On the session's shared pipeline (`scoring_pipeline`: its model server, statements, and the sink and writeback
workers as threads, the writeback with `LocalCrm()`: echo on, its default). Each lead is written to the CRM, comes
back to input_raw with a new LastModifiedDate and its features unchanged, and is not scored again; input_raw stops
receiving this test's Ids. Without the echo suppression (streaming/sql/unchanged.sql) every echo is scored, written
and echoed again, forever.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lead_scoring.crm.replay import frame_records, replay
from lead_scoring.monitoring.audit import read_window

pytestmark = pytest.mark.stack

# How long an echo takes locally, at most: the writeback's and the sink's micro-batch waits (0.5 s each), the
# echo's own wait for the record to land (2 s) and Flink's hops; what Salesforce's poll interval is in gcp.
POLL_S = 5.0


def _wait(check, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s"
        time.sleep(1)


def test_each_lead_is_scored_once_and_input_raw_stops_growing_with_the_crm_echo_on(scoring_pipeline, tmp_path) -> None:
    product = scoring_pipeline
    assert product.crm.echo  # the default: every local run has the loop production has
    events = product.events(40, seed=5, folder=tmp_path)
    ids = set(events["Id"])
    since_ms = int((datetime.now(UTC) - timedelta(seconds=1)).timestamp() * 1000)
    summary = replay(product.kafka, frame_records(events), product.input_raw, rate=40.0)
    assert summary.failed == 0
    replayed = len(events)

    def written_and_echoed() -> bool:
        echoed = product.warehouse.query(
            "SELECT COUNT(DISTINCT Id) AS n FROM crm_leads_raw WHERE _EventType = 'updated' AND Id IN UNNEST(@ids)",
            {"ids": sorted(ids)},
        )
        return product.in_table("crm_leads", ids) >= len(ids) and int(echoed["n"][0]) >= len(ids)

    _wait(written_and_echoed, 300, "every lead written to the CRM and its echo landed")

    def on_input_raw() -> int:
        window = read_window(product.kafka, [product.input_raw], since_ms)[product.input_raw]
        return sum(1 for r in window if r.key and r.key.decode() in ids)

    # input_raw stops receiving these leads within two poll periods: their echoes are the last records
    grown = []
    for _ in range(2):
        before = on_input_raw()
        time.sleep(POLL_S)
        grown.append(on_input_raw() - before)
    total = on_input_raw()
    assert grown[-1] == 0, f"input_raw still growing: {grown} records per {POLL_S:.0f} s"
    assert total <= replayed + len(ids), (total, replayed, len(ids))  # at most one echo per lead

    # each lead scored at most once more than it changed: here, once (its echo is never scored)
    per_id = product.warehouse.query(
        "SELECT Id, COUNT(*) AS n FROM lead_score_history WHERE Id IN UNNEST(@ids) GROUP BY Id", {"ids": sorted(ids)}
    )
    assert set(per_id["Id"]) == ids
    assert int(per_id["n"].max()) <= 2, per_id.sort_values("n").tail()
    assert int(per_id["n"].sum()) == len(ids), per_id.sort_values("n").tail()
    # the echo is what Salesforce sends: the same features, LastModifiedDate moved by the write
    echoed = product.warehouse.query(
        "SELECT e.Id FROM crm_leads_raw e JOIN crm_leads_raw c ON e.Id = c.Id AND c._EventType = 'created' "
        "WHERE e._EventType = 'updated' AND e.LastModifiedDate > c.LastModifiedDate "
        "AND e.Total_Visits__c IS NOT DISTINCT FROM c.Total_Visits__c "
        "AND e.LeadSource IS NOT DISTINCT FROM c.LeadSource AND e.Id IN UNNEST(@ids)",
        {"ids": sorted(ids)},
    )
    assert set(echoed["Id"]) == ids
