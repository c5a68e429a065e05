"""The Dagster definitions load in both profiles; bad settings name the variable."""

import dagster as dg
import pytest

from lead_scoring.settings import ConfigurationError, Profile, current_profile
from lead_scoring.warehouse.definitions import warehouse as warehouse_resource


def _load():
    from lead_scoring.definitions import defs

    return defs() if callable(defs) else defs


def test_local_definitions_load_with_groups_owners_and_kinds():
    definitions = _load()
    graph = definitions.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"crm_leads_raw", "training_data", "lead_scoring_model", "model_artifact"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert node.group_name, key
            assert node.owners, key
            assert node.kinds, key
            assert node.description and "\n" not in node.description.strip(), key
    assert definitions.resolve_job_def("retraining_job")
    assert definitions.resolve_schedule_def("weekly_retraining").cron_schedule == "0 3 * * 1"


def test_profile_errors_name_the_variable(monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "azure")
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_PROFILE='azure'.*local, gcp"):
        current_profile()


def test_gcp_profile_reads_settings_from_env_vars(monkeypatch):
    warehouse = warehouse_resource(Profile.GCP)
    assert type(warehouse).__name__ == "BigQueryWarehouse"
    for var in ("LEAD_SCORING_GCP_PROJECT", "LEAD_SCORING_BQ_DATASET", "LEAD_SCORING_GCS_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    # a missing variable is reported by name when the resource is used
    with pytest.raises(Exception, match="LEAD_SCORING_GCP_PROJECT|LEAD_SCORING_BQ_DATASET"):
        dg.build_resources({"warehouse": warehouse}).__enter__()
    monkeypatch.setenv("LEAD_SCORING_GCP_PROJECT", "acme")
    monkeypatch.setenv("LEAD_SCORING_BQ_DATASET", "leads")
    with dg.build_resources({"warehouse": warehouse}) as built:
        assert built.warehouse.describe() == "bigquery://acme.leads"


def test_retraining_cron_is_configurable(monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_RETRAIN_CRON", "30 1 * * *")
    assert _load().resolve_schedule_def("weekly_retraining").cron_schedule == "30 1 * * *"
    monkeypatch.setenv("LEAD_SCORING_RETRAIN_CRON", "weekly")
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_RETRAIN_CRON='weekly'"):
        _load()
