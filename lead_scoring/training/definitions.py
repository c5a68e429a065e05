"""The training domain: warehouse records -> training data -> gated model -> artifact, and the retraining job."""

from __future__ import annotations

import dagster as dg

from lead_scoring.settings import Profile, retraining_cron
from lead_scoring.training.assets import (
    crm_leads_raw,
    lead_scoring_model,
    model_artifact,
    model_card,
    model_quality_gate,
    retraining_job,
    retraining_schedule,
    training_data,
)


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(
        assets=[crm_leads_raw, training_data, lead_scoring_model, model_artifact, model_card],
        asset_checks=[model_quality_gate],
        jobs=[retraining_job],
        schedules=[retraining_schedule(cron=retraining_cron())],
    )
