"""Dagster definitions of lead_scoring: each domain's definitions, merged; the profile picks the resources."""

import dagster as dg

from lead_scoring.crm import definitions as crm
from lead_scoring.lifecycle import definitions as lifecycle
from lead_scoring.monitoring import definitions as monitoring
from lead_scoring.production import definitions as production
from lead_scoring.promotion import definitions as promotion
from lead_scoring.serving import definitions as serving
from lead_scoring.settings import current_profile
from lead_scoring.storage import definitions as storage
from lead_scoring.streaming import definitions as streaming
from lead_scoring.training import definitions as training
from lead_scoring.warehouse import definitions as warehouse

# Evaluates every asset's automation condition (the daily drift, backtest and ledger summary), in the daemon:
# no process per tick. Dagster's implicit default sensor would start STOPPED.
AUTOMATION_SENSOR = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes the assets whose automation condition says so (see each asset's Automation tab).",
)
DOMAINS = (warehouse, storage, training, serving, streaming, crm, lifecycle, promotion, monitoring, production)


@dg.definitions
def defs() -> dg.Definitions:
    profile = current_profile()
    return dg.Definitions.merge(
        *(domain.defs(profile) for domain in DOMAINS),
        # One process per run: a step subprocess would re-import sklearn/dagster (~10 s) on 2 cores.
        dg.Definitions(executor=dg.in_process_executor, sensors=[AUTOMATION_SENSOR]),
    )
