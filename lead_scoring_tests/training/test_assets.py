"""Training assets end to end on DuckDB + a local artifact store (real components, no fakes)."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.training import assets as training
from lead_scoring.training.fitting import FitSettings
from lead_scoring.training.model import FAMILIES, LeadScorer, ModelParams, build_pipeline, features_frame, fit
from lead_scoring.warehouse.resources import DuckDBWarehouse

ASSETS = [
    training.crm_leads_raw,
    training.training_data,
    training.lead_scoring_model,
    training.model_quality_gate,
    training.model_artifact,
    training.model_card,
]


@pytest.fixture
def resources(tmp_path: Path) -> dict:
    return {
        "warehouse": DuckDBWarehouse(path=str(tmp_path / "wh.duckdb")),
        "model_store": LocalModelStore(root=str(tmp_path / "artifacts")),
    }


def _run(resources, run_config=None, selection=None):
    return dg.materialize(
        ASSETS,
        resources=resources,
        run_config=run_config or {},
        selection=selection,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _mats(result, key):
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(key)
    ]


def test_whole_graph_from_the_shipped_sample(resources):
    result = _run(resources)
    assert result.success
    raw = _mats(result, "crm_leads_raw")[0].metadata
    assert raw["rows"].value == 3000 and raw["rejected_in_this_run"].value == 0
    data = _mats(result, "training_data")[0].metadata
    assert data["train_rows"].value + data["validation_rows"].value == data["rows"].value
    assert data["rows"].value == 2897  # decided leads only
    assert data["validation_from"].value > data["created_from"].value
    model = _mats(result, "lead_scoring_model")[0].metadata
    assert model["roc_auc"].value > 0.75
    for key in ("pr_auc", "brier_score", "log_loss", "top_decile_lift"):
        assert key in model
    assert "data:image/png;base64," in model["plots"].value
    # both families competed; the table shows each, the grade table each grade's conversion rate
    candidates = model["candidates"].value
    assert "| additive |" in candidates and "| boosted |" in candidates and candidates.count("| yes |") == 1
    assert model["family"].value in ("additive", "boosted")
    assert "| A |" in model["grades"].value and "validation conversion rate" in model["grades"].value
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["champion_version"].value == "none (first model)"
    assert check.metadata["challenger_family"].value == model["family"].value
    artifact = result.output_for_node("model_artifact")
    repo = resources["model_store"].repository()
    assert repo.versions() == [artifact.version]
    pipeline, manifest = repo.load(artifact.version)
    assert manifest["features"] and "Sales_Tags__c" not in manifest["features"]
    assert manifest["training_data"]["from"] < manifest["training_data"]["to"]
    assert manifest["family"] == model["family"].value == manifest["params"]["family"]
    assert [c["family"] for c in manifest["candidates"]] == ["additive", "boosted"]

    # grades: fitted on the validation leads, kept in the manifest, used by the scorer built from it
    grades = manifest["grades"]
    cut = grades["min_score"]
    assert 100 >= cut["A"] > cut["B"] > cut["C"] > 0
    rates = [band["conversion_rate"] for band in grades["validation"]]
    assert rates == sorted(rates, reverse=True)
    assert sum(band["leads"] for band in grades["validation"]) == data["validation_rows"].value
    scorer = LeadScorer.from_manifest(pipeline, manifest)
    leads = generate_leads(200, seed=5)
    graded = scorer.score_frame(features_frame(leads))
    assert {s.grade for s in graded} <= {"A", "B", "C", "D"} and len({s.grade for s in graded}) >= 3
    assert all(s.grade == scorer.grades.grade(s.score) for s in graded)

    # re-seeding is idempotent
    again = _run(resources, selection=[training.crm_leads_raw])
    assert _mats(again, "crm_leads_raw")[0].metadata["rows"].value == 3000


def test_gate_blocks_a_challenger_worse_than_the_champion(resources):
    first = _run(resources)
    champion = first.output_for_node("model_artifact")
    resources["model_store"].repository().set_production(champion.version)
    # a crippled challenger: regularized until it barely learns
    weak = {"ops": {"lead_scoring_model": {"config": {"families": ["additive"], "regularization_c": 1e-5}}}}
    result = _run(resources, run_config=weak)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert "worse than production model" in check.description
    assert "no grades A-D could be fitted" in check.description  # it cannot even separate four grades
    assert check.metadata["champion_version"].value == champion.version
    assert not _mats(result, "model_artifact")  # blocked: nothing new in the store
    assert resources["model_store"].repository().versions() == [champion.version]


def test_gate_floor(resources):
    gate_config = {"ops": {"lead_scoring_model_model_quality_gate": {"config": {"min_roc_auc": 0.99}}}}
    result = _run(resources, run_config=gate_config)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and "below the floor 0.9900" in check.description
    assert not _mats(result, "model_artifact")


def _seed(resources, frame: pd.DataFrame, tmp_path: Path) -> dict:
    from lead_scoring.crm.synthetic import write_frame

    path = tmp_path / "seed.jsonl"
    write_frame(frame, path)
    return {"ops": {"crm_leads_raw": {"config": {"seed_file": str(path)}}}}


def test_one_class_stops_with_a_clear_message(resources, tmp_path: Path):
    leads = generate_leads(400, seed=2)
    leads["IsConverted"] = leads["IsConverted"].map(lambda v: None if v is None else False)
    result = _run(resources, run_config=_seed(resources, leads, tmp_path))
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "one class only cannot train" in str(failure.event_specific_data.error)


def test_too_few_rows_and_rejected_records(resources, tmp_path: Path):
    leads = generate_leads(50, seed=2).astype(object)
    leads.loc[0, "Total_Visits__c"] = "many"  # breaks the contract: kept in rejected_leads
    result = _run(resources, run_config=_seed(resources, leads, tmp_path))
    assert not result.success
    raw = _mats(result, "crm_leads_raw")[0].metadata
    assert raw["rejected_in_this_run"].value == 1 and raw["rows"].value == 49
    rejected = resources["warehouse"].query("SELECT reason FROM rejected_leads")
    assert rejected["reason"].tolist() == ["Total_Visits__c: expected a number, got string"]
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "training needs at least 50" in str(failure.event_specific_data.error)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_gate_leakage_check_sees_every_family(family: str):
    leads = generate_leads(600, seed=4)
    leads = leads[leads["IsConverted"].notna()]
    frame = features_frame(leads).assign(Activity_Score__c=leads["Activity_Score__c"].astype(float).fillna(0.0))
    clean = fit(build_pipeline(ModelParams(family=family)), features_frame(leads), leads["IsConverted"])
    trained = training.TrainedModel(clean, {}, {"roc_auc": 0.9}, list(training.FEATURES), {}, family=family)
    assert training.leakage_fields(trained) == [] and training.unservable(trained) is None

    leaky = build_pipeline(ModelParams(family=family))
    leaky.named_steps["preprocess"].transformers.append(("leak", "passthrough", ["Activity_Score__c"]))
    fit(leaky, frame, leads["IsConverted"])
    trained = training.TrainedModel(leaky, {}, {"roc_auc": 0.99}, list(training.FEATURES), {}, family=family)
    assert training.leakage_fields(trained) == ["Activity_Score__c"]
    assert "cannot be scored with exact reasons" in training.unservable(trained)


def test_candidate_selection_prefers_the_simpler_family_on_near_ties():
    def cand(family, auc):
        return training.Candidate(family, None, {}, {"roc_auc": auc}, 0.0, 0.0)

    additive, boosted = cand("additive", 0.900), cand("boosted", 0.901)
    assert training.select_candidate([additive, boosted], min_auc_gain=0.002) is additive
    assert training.select_candidate([additive, boosted], min_auc_gain=0.0) is boosted
    assert training.select_candidate([additive, cand("boosted", 0.93)], min_auc_gain=0.002).family == "boosted"


def test_candidate_selection_passes_over_a_candidate_the_gate_would_block_for_its_calibration():
    rng = np.random.default_rng(0)
    proba = rng.uniform(0.05, 0.95, 2000)  # on 2,000 leads a calibrated model shows little ECE by chance

    def cand(family, auc, ece):
        return training.Candidate(family, None, {}, {"roc_auc": auc, "ece": ece}, 0.0, 0.0, evaluation_proba=proba)

    settings = FitSettings(bootstrap_resamples=50)
    sharp, calibrated = cand("additive", 0.90, 0.12), cand("boosted", 0.88, 0.05)
    assert training.calibrated_enough(calibrated, few_data=True, settings=settings)
    assert not training.calibrated_enough(sharp, few_data=True, settings=settings)
    assert not training.calibrated_enough(calibrated, few_data=False, settings=settings)  # 0.03 outside few-data
    chosen = training.select_candidate(
        [sharp, calibrated], 0.002, lambda c: training.calibrated_enough(c, True, settings)
    )
    assert chosen is calibrated
    # when none would pass, the best ranker is still chosen (and the gate says why it blocks)
    assert training.select_candidate([sharp, cand("boosted", 0.88, 0.2)], 0.002, lambda c: False) is sharp


def test_unknown_family_stops_naming_the_setting(resources):
    bad = {"ops": {"lead_scoring_model": {"config": {"families": ["additive", "forest"]}}}}
    result = _run(resources, run_config=bad)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "lead_scoring_model.families names unknown families ['forest']" in str(failure.event_specific_data.error)
