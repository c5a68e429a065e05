"""The erasure sweep: deleted events that reached the warehouse without the sink worker.

In the gcp profile the BigQuery sink connector lands `input_raw` in `crm_leads_raw`, `deleted` events
included; this hourly job erases those leads with the same `erase_leads` the sink and the CLI use.
"""

import dagster as dg

from lead_scoring.lifecycle.erased_ids import ErasedIdsTopic
from lead_scoring.lifecycle.erasure import (
    TRIGGER_DELETED,
    ErasureKey,
    ErasureRegister,
    erase_leads,
)
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.warehouse.resources import Warehouse

PENDING_DELETIONS_SQL = "SELECT DISTINCT Id FROM crm_leads_raw WHERE _EventType = 'deleted' AND Id IS NOT NULL"


@dg.op(description="Erase every lead with a `deleted` event in crm_leads_raw (the events themselves included).")
def erase_deleted_leads(
    context: dg.OpExecutionContext, warehouse: Warehouse, erasure_key: ErasureKey, kafka: KafkaResource
) -> int:
    ids = [str(i) for i in warehouse.query(PENDING_DELETIONS_SQL)["Id"]]
    if not ids:
        context.log.info("no deleted leads to erase")
        return 0
    register = ErasureRegister(warehouse, erasure_key.secret(), ErasedIdsTopic(kafka))
    report = erase_leads(ids, warehouse, register, trigger=TRIGGER_DELETED)
    context.log.info("erasure sweep: %s", report.summary())
    return report.ids


@dg.job(
    name="erasure_sweep_job",
    tags={"team": "data-platform"},
    description="Erase leads whose `deleted` event reached the warehouse without the sink worker (e.g. the "
    "BigQuery sink connector): every row of the Id, and the Id into the erasure register and the erased_ids topic "
    "(the scoring statements drop its later records).",
)
def erasure_sweep_job() -> None:
    erase_deleted_leads()


erasure_sweep_schedule = dg.ScheduleDefinition(
    name="hourly_erasure_sweep",
    job=erasure_sweep_job,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Erase leads deleted in the CRM whose deleted event landed in the warehouse.",
)
