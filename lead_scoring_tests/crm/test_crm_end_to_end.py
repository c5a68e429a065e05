"""End to end on the real stack: replay -> Flink pipeline -> model server -> writeback + sink -> crm_leads.

On the session's shared pipeline (`scoring_pipeline`): rolled out by the `model_deployment` and
`flink_statements` assets on its own topic prefix, statement names and consumer groups, the CRM workers as
in-process threads on the same prefixed topics. This test's leads have Ids of their own; it asserts on those.
"""

from __future__ import annotations

import pandas as pd
import pytest

from lead_scoring.crm.replay import frame_records, replay
from lead_scoring.retry import wait_until
from lead_scoring.streaming.lag import group_lag

pytestmark = pytest.mark.stack


def test_replayed_leads_get_scored_written_back_and_land_in_the_warehouse(scoring_pipeline, tmp_path):
    product = scoring_pipeline
    warehouse, raw, scores = product.warehouse, product.input_raw, product.score_topics
    events = product.events(60, seed=21, folder=tmp_path, with_outcomes=True)
    created = events[events["_EventType"] == "created"]
    ids = set(created["Id"])
    summary = replay(product.kafka, frame_records(events), raw, rate=50.0)
    assert summary.failed == 0 and summary.sent == len(events)
    params = {"ids": sorted(ids)}

    def landed() -> bool | None:
        raw_rows = warehouse.query("SELECT COUNT(*) AS n FROM crm_leads_raw WHERE Id IN UNNEST(@ids)", params)
        return product.in_table("crm_leads", ids) >= len(ids) and int(raw_rows["n"][0]) >= len(events) or None

    wait_until(landed, timeout_s=300, interval_s=2, what="the leads' scores in crm_leads and events in crm_leads_raw")

    crm = warehouse.query(
        "SELECT Id, _ObjectType, Lead_Score__c, Lead_Score_Model__c, source_ts, scored_ts FROM crm_leads "
        "WHERE Id IN UNNEST(@ids)",
        params,
    )
    assert set(crm["Id"]) == ids  # every replayed Lead/Contact carries a score
    assert crm["Lead_Score__c"].between(0, 100).all()
    assert (crm["Lead_Score_Model__c"] == product.model_version).all()
    assert (crm["scored_ts"] >= crm["source_ts"]).all()
    kinds = dict(zip(created["Id"], created["_ObjectType"], strict=True))
    assert all(kinds[i] == o for i, o in zip(crm["Id"], crm["_ObjectType"], strict=True))
    # every event reached crm_leads_raw once, outcomes included: the next training run sees them; the other rows
    # are the local CRM's echoes of the writes (LastModifiedDate moved, as Salesforce sends them: docs/crm.md)
    raw_rows = warehouse.query(
        "SELECT Id, LastModifiedDate, _EventType, IsConverted FROM crm_leads_raw WHERE Id IN UNNEST(@ids)", params
    )
    stamps = pd.to_datetime(events["LastModifiedDate"], utc=True)
    sent = set(zip(events["Id"], stamps, strict=True))
    landed_keys = list(zip(raw_rows["Id"], pd.to_datetime(raw_rows["LastModifiedDate"], utc=True), strict=True))
    originals = [key for key in landed_keys if key in sent]
    assert len(originals) == len(set(originals)) == len(events)
    echoes = raw_rows[[key not in sent for key in landed_keys]]
    assert set(echoes["_EventType"]) <= {"updated"}
    assert product.in_table("lead_scores", ids) == len(ids)
    # the writeback committed what it wrote: nothing left for it on the score topics
    wait_until(
        lambda: group_lag(product.kafka, f"{product.names}-writeback", scores) == dict.fromkeys(scores, 0) or None,
        timeout_s=60,
        interval_s=1,
        what="the writeback's consumer group caught up",
    )
