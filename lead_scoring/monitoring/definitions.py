"""The monitoring domain: drift, backtests, stream health, latency, retraining triggers and, locally, the
stack itself."""

from __future__ import annotations

import dagster as dg

from lead_scoring.monitoring.assets import drift_job, lead_score_drift
from lead_scoring.monitoring.backtest import backtest_job, lead_score_backtest
from lead_scoring.monitoring.hop_checks import hops_reconciled, workers_flowing
from lead_scoring.monitoring.resources import monitoring_settings
from lead_scoring.monitoring.sensors import (
    latency_slo,
    monitoring_sensors,
    statement_positions_health_checks,
    stream_health_checks,
)
from lead_scoring.monitoring.stack_sensor import local_stack_sensor, local_stack_spec, services_running
from lead_scoring.settings import Profile, project_settings


def defs(profile: Profile) -> dg.Definitions:
    local = profile is Profile.LOCAL
    gcp = profile is Profile.GCP
    workers_here = profile in (Profile.LOCAL, Profile.CLUSTER)  # their heartbeats are on this machine
    # gcp: Confluent Cloud's statements are in no consumer group; their lag comes from the Statements API
    sensors = monitoring_sensors(project_settings().latency_probe_interval_s, salesforce=gcp, statement_positions=gcp)
    return dg.Definitions(
        assets=[lead_score_drift, lead_score_backtest, *([local_stack_spec] if local else [])],
        asset_checks=[
            statement_positions_health_checks if gcp else stream_health_checks,
            latency_slo,
            *([services_running] if local else []),
            hops_reconciled,
            *([workers_flowing] if workers_here else []),
        ],
        jobs=[drift_job, backtest_job],
        sensors=[*sensors, *([local_stack_sensor] if local else [])],
        resources={"monitoring": monitoring_settings(profile)},
    )
