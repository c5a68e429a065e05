"""Dagster definitions of lead_scoring: assets by concept, resources chosen by profile."""

import dagster as dg

from lead_scoring.crm import assets as crm
from lead_scoring.monitoring import assets as monitoring
from lead_scoring.monitoring import sensors as monitoring_sensors
from lead_scoring.resources import build_resources
from lead_scoring.serving import assets as serving
from lead_scoring.settings import retraining_cron
from lead_scoring.streaming import assets as streaming
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
            streaming.streaming_topics,
            streaming.flink_statements,
            *crm.CONNECTOR_ASSETS,
            monitoring.lead_score_drift,
            *monitoring_sensors.topic_assets,
        ],
        asset_checks=[training.model_quality_gate, monitoring_sensors.stream_health_checks,
                      monitoring_sensors.latency_slo],
        jobs=[training.retraining_job, monitoring.drift_job, monitoring_sensors.stream_alert_job],
        schedules=[training.retraining_schedule(cron=retraining_cron()), monitoring.daily_drift_schedule],
        sensors=monitoring_sensors.sensors_for_profile(),
        resources=build_resources(),
        # One process per run: a step subprocess would re-import sklearn/dagster (~10 s) on 2 cores.
        executor=dg.in_process_executor,
    )
