"""The production domain: in the gcp profile, the `gcp_preflight` asset check (vendors' resources and permissions)."""

from __future__ import annotations

import dagster as dg

from lead_scoring.crm.salesforce import SalesforceResource
from lead_scoring.production.preflight import (
    ConfluentCloudApi,
    PreflightTargets,
    Status,
    findings_markdown,
    run_preflight,
)
from lead_scoring.serving.vertex import VertexAIModelServing
from lead_scoring.settings import Profile
from lead_scoring.storage.resources import GcsModelStore
from lead_scoring.streaming.confluent import ConfluentFlink
from lead_scoring.warehouse.resources import BigQueryWarehouse

FLINK_STATEMENTS = dg.AssetKey("flink_statements")


@dg.asset_check(
    asset=FLINK_STATEMENTS,
    name="gcp_preflight",
    blocking=False,
    description="Every vendor resource the gcp profile needs exists and its permissions are held "
    "(read-only calls; `lead-scoring preflight` runs the same).",
)
def gcp_preflight(
    flink: ConfluentFlink,
    warehouse: BigQueryWarehouse,
    model_serving: VertexAIModelServing,
    model_store: GcsModelStore,
    crm: SalesforceResource,
) -> dg.AssetCheckResult:
    """The gcp profile's own resources (the check is in the gcp definitions only)."""
    targets = PreflightTargets.from_resources(
        flink, warehouse, model_serving, model_store, crm, cloud=ConfluentCloudApi.from_env()
    )
    findings = run_preflight(targets)
    blocking = [f for f in findings if f.blocking]
    counts = {s.value: sum(f.status is s for f in findings) for s in Status}
    description = (
        "all resources present and permissions held"
        if not blocking
        else "; ".join(f"{f.resource}: {f.status.value} ({f.fix or f.detail})" for f in blocking)[:1000]
    )
    return dg.AssetCheckResult(
        passed=not blocking,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={"findings": dg.MetadataValue.md(findings_markdown(findings)), **counts},
    )


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(asset_checks=[gcp_preflight] if profile is Profile.GCP else [])
