"""`lead-scoring product status`: which product assets this Dagster instance has never materialized."""

from __future__ import annotations

import dagster as dg

from lead_scoring.cli.product import PRODUCT_GROUPS, unmaterialized
from lead_scoring.settings import project_root


def test_every_product_asset_counts_until_it_is_materialized_once() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        never = unmaterialized(instance)
        assert {"training_data", "lead_scoring_model", "model_artifact", "model_deployment"} <= set(never)
        assert "lead_score_drift" not in never  # a report (monitoring), not a part of the deployed product
        for name in never[:-1]:
            instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(name)))
        assert unmaterialized(instance) == never[-1:]
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(never[-1])))
        assert unmaterialized(instance) == []
        assert unmaterialized(instance, ("monitoring",))  # other groups are asked for by name


def test_the_groups_are_the_ones_scripts_up_materializes_to_deploy() -> None:
    up = (project_root() / "scripts" / "up").read_text()
    selection = " or ".join(f"group:{g}" for g in PRODUCT_GROUPS)
    assert f'dg launch --assets "{selection}"' in up
