"""The lifecycle domain: the score ledger asset, the erasure sweep, and the `erasure_key` of each profile."""

from __future__ import annotations

import dagster as dg

from lead_scoring.lifecycle.erasure import erasure_key
from lead_scoring.lifecycle.ledger import lead_score_history
from lead_scoring.lifecycle.sweep import erasure_sweep_job, erasure_sweep_schedule
from lead_scoring.settings import Profile


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(
        assets=[lead_score_history],
        jobs=[erasure_sweep_job],
        schedules=[erasure_sweep_schedule],
        resources={"erasure_key": erasure_key(profile)},
    )
