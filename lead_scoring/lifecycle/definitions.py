"""The lifecycle domain: the score ledger asset."""

from __future__ import annotations

import dagster as dg

from lead_scoring.lifecycle.ledger import lead_score_history
from lead_scoring.settings import Profile


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(assets=[lead_score_history])
