"""The action assets do nothing unless asked: "Materialize all" in the UI runs them with their defaults."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from lead_scoring.promotion.assets import (
    ASSETS,
    challenger_beats_champion,
    champion_revert,
    revert_job,
)

ACTION_AND_AFTER = [
    "challenger_deployment",
    "champion_challenger_comparison",
    "champion_promotion",
    "champion_revert",
    "full_rescore",
]


class Untouchable:
    """A resource that fails the step if the asset uses it: with default config nothing may be deployed."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # Dagster's own look at the object, not the asset's use of it
            raise AttributeError(name)
        pytest.fail(f"an action asset with default config used its resource {self.key}.{name}")


def _resources() -> dict[str, Any]:
    return {
        key: dg.ResourceDefinition.hardcoded_resource(Untouchable(key))
        for key in ("model_store", "model_serving", "kafka", "flink", "warehouse")
    }


def test_materializing_every_action_asset_with_its_defaults_succeeds_and_changes_nothing() -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize_to_memory(
        [*ASSETS, challenger_beats_champion], resources=_resources(), selection=ACTION_AND_AFTER, instance=instance
    )
    assert result.success
    assert result.get_asset_materialization_events() == []
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert skipped == {
        "champion_challenger_comparison",
        "champion_challenger_comparison_challenger_beats_champion",
        "champion_promotion",
        "full_rescore",
    }
    said = " ".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert "no challenger asked for" in said and "no revert asked for" in said


def test_revert_job_asks_for_the_previous_champion() -> None:
    config = revert_job.config  # the job's default run config
    assert config is not None
    ops = config.config if hasattr(config, "config") else config
    assert ops["ops"][champion_revert.op.name]["config"]["to_previous"] is True
