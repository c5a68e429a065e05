"""Dagster definitions of lead_scoring: assets by concept, resources chosen by profile."""

import dagster as dg

from lead_scoring.resources import build_resources
from lead_scoring.serving import assets as serving
from lead_scoring.settings import retraining_cron
from lead_scoring.training import assets as training


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            training.crm_leads_raw,
            training.training_data,
            training.lead_scoring_model,
            training.model_artifact,
            serving.model_deployment,
        ],
        asset_checks=[training.model_quality_gate],
        jobs=[training.retraining_job],
        schedules=[training.retraining_schedule(cron=retraining_cron())],
        resources=build_resources(),
        # One process per run: a step subprocess would re-import sklearn/dagster (~10 s) on 2 cores.
        executor=dg.in_process_executor,
    )
