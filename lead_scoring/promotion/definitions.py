"""The model-lifecycle domain: challenger, comparison (+ blocking gate), promotion, revert, full re-score."""

from __future__ import annotations

import dagster as dg

from lead_scoring.promotion.assets import (
    ASSETS,
    challenger_beats_champion,
    promotion_job,
    revert_job,
)
from lead_scoring.settings import Profile


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(assets=ASSETS, asset_checks=[challenger_beats_champion], jobs=[promotion_job, revert_job])
