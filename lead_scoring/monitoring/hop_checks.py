"""Checks on the score ledger that the sink and the writeback fill: the workers flow, and every hop holds every
record exactly once.

* `workers_flowing`: red (ERROR) when a CRM worker is stuck on a record (`stuck at input_raw[0]@41234 for 3 min:
  <error>`), stopped reporting (`last heartbeat 29 s ago (...)`), waits or is gone, in the words of `stack
  status`; green with each worker's consumed and quarantined counts. Local and cluster profiles (the workers run
  on this machine and write their heartbeat under its state folder).
* `hops_reconciled`: `lead-scoring audit` over the last `window_minutes`: red (ERROR) naming the hop where records
  are missing or doubled; late records (younger than the grace period) are shown, not failing.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from lead_scoring.crm.health import worker_reports
from lead_scoring.crm.resources import CrmResource, LocalCrm
from lead_scoring.lifecycle.erasure import ErasureKey, ErasureRegister
from lead_scoring.lifecycle.ledger import LEDGER_ASSET_KEY
from lead_scoring.monitoring.audit import DEFAULT_GRACE_S, audit
from lead_scoring.settings import state_dir
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.warehouse.resources import Warehouse

WORKERS_CHECK = "workers_flowing"
HOPS_CHECK = "hops_reconciled"


def workers_evaluation() -> dg.AssetCheckEvaluation:
    """The `workers_flowing` verdict from the workers' heartbeats (the check, and local_stack_sensor every 30 s)."""
    reports = worker_reports(state_dir())
    bad = [r for r in reports if not r.healthy]
    description = (
        "; ".join(f"{r.name}: {r.problem}" for r in bad)
        if bad
        else "; ".join(f"{r.name}: consumed {r.consumed or 0:,}, quarantined {r.quarantined or 0:,}" for r in reports)
    )
    metadata: dict[str, Any] = {
        f"{r.name}": dg.MetadataValue.json(
            {
                "problem": r.problem,
                "consumed": r.consumed,
                "quarantined": r.quarantined,
                "heartbeat_age_s": r.heartbeat_age_s,
                "stuck": r.stuck,
            }
        )
        for r in reports
    }
    metadata["quarantined_total"] = dg.MetadataValue.int(sum(r.quarantined or 0 for r in reports))
    return dg.AssetCheckEvaluation(
        asset_key=LEDGER_ASSET_KEY,
        check_name=WORKERS_CHECK,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


@dg.asset_check(
    asset=LEDGER_ASSET_KEY,
    name=WORKERS_CHECK,
    description="The CRM workers (sink: topics -> warehouse and ledger; writeback: scores -> CRM) are "
    "consuming: red with why (stuck at a record, stale heartbeat, waiting for Kafka, gone), "
    "green with their consumed and quarantined counts (local_stack_sensor: every 30 s).",
)
def workers_flowing() -> dg.AssetCheckResult:
    verdict = workers_evaluation()
    return dg.AssetCheckResult(
        passed=verdict.passed, severity=verdict.severity, description=verdict.description, metadata=verdict.metadata
    )


class HopsConfig(dg.Config):
    window_minutes: float = Field(default=30.0, gt=0, description="audit the input_raw records of the last N minutes")
    grace_s: float = Field(
        default=DEFAULT_GRACE_S,
        ge=0,
        description="a record younger than this that is not there yet is late, not missing",
    )


@dg.asset_check(
    asset=LEDGER_ASSET_KEY,
    name=HOPS_CHECK,
    description="`lead-scoring audit` over a recent window: every input_raw record reached the DLQ or "
    "leads/contacts, the score topics, the CRM, crm_leads_raw, lead_scores and the ledger "
    "exactly once; red naming the hop where records are missing or doubled.",
)
def hops_reconciled(
    config: HopsConfig, kafka: KafkaResource, warehouse: Warehouse, crm: CrmResource, erasure_key: ErasureKey
) -> dg.AssetCheckResult:
    since = datetime.now(UTC) - timedelta(minutes=config.window_minutes)
    report = audit(
        kafka,
        warehouse,
        since,
        grace_s=config.grace_s,
        register=ErasureRegister(warehouse, erasure_key.secret()),
        crm_table="crm_leads" if isinstance(crm, LocalCrm) else None,
    )
    return dg.AssetCheckResult(
        passed=report.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.verdict(),
        metadata={
            "audited": dg.MetadataValue.int(report.audited),
            "missing": dg.MetadataValue.int(report.missing),
            "doubled": dg.MetadataValue.int(report.doubled),
            "late": dg.MetadataValue.int(report.late),
            "hops": dg.MetadataValue.json(report.as_dict()["hops"]),
            "excluded": dg.MetadataValue.json(report.excluded),
        },
    )
