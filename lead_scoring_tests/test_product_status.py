"""`lead-scoring product status`: which product assets this Dagster instance has never materialized."""

from __future__ import annotations

import dagster as dg

from lead_scoring.cli.product import PRODUCT_ASSETS, PRODUCT_GROUPS, unmaterialized
from lead_scoring.definitions import defs
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
        assert unmaterialized(instance, ("lead_score_drift",)) == ["lead_score_drift"]


def test_the_listed_assets_are_the_materializable_assets_of_the_product_groups() -> None:
    graph = defs().resolve_asset_graph()
    keys = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable and graph.get(key).group_name in PRODUCT_GROUPS
    }
    assert keys == set(PRODUCT_ASSETS)


def test_the_groups_are_the_ones_scripts_up_materializes_to_deploy() -> None:
    up = (project_root() / "scripts" / "up").read_text()
    selection = " or ".join(f"group:{g}" for g in PRODUCT_GROUPS)
    assert f'dg launch --assets "{selection}"' in up
