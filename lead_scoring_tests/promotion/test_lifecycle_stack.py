"""The model lifecycle on the real stack: grades in the CRM, a challenger in shadow, promotion + full re-score, revert.

One pipeline on this module's own topics, statement names and consumer groups (as test_pipeline_stack.py), a
model server of its own run by `LocalModelServer` (a private supervisor), the sink and writeback workers as
threads on the prefixed topics, and the Dagster assets materialized as a user would (one job each).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import dagster as dg
import httpx
import pytest

from lead_scoring.crm.replay import frame_records, load_events, replay
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.crm.synthetic import generate_leads, write_frame
from lead_scoring.crm.workers import build_worker
from lead_scoring.promotion.assets import (
    ASSETS,
    challenger_beats_champion,
    challenger_deployment,
    champion_challenger_comparison,
    champion_promotion,
    champion_revert,
    full_rescore,
)
from lead_scoring.serving.assets import model_deployment
from lead_scoring.serving.local import LocalModelServer
from lead_scoring.serving.service import served_version
from lead_scoring.settings import Profile, challenger_model_name
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

GRADES = {"min_score": {"A": 60, "B": 40, "C": 20}, "method": "test"}


def _artifact_asset(artifact: ModelArtifact) -> dg.AssetsDefinition:
    @dg.asset(name="model_artifact")
    def stub() -> ModelArtifact:
        return artifact

    return stub


def _wait(check, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s"
        time.sleep(2)


def _roles(jobs: dict[str, str], names: str) -> dict[str, tuple[str, str]]:
    """role -> (statement name, job id): statements are `<prefix>-<role>-<fingerprint of their SQL>`."""
    return {name.removeprefix(names + "-").rsplit("-", 1)[0]: (name, jid) for name, jid in jobs.items()}


def _jobs(flink_rest_url: str, names: str) -> dict[str, str]:
    jobs = httpx.get(f"{flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]
    return {j["name"]: j["jid"] for j in jobs if j["name"].startswith(names) and j["state"] == "RUNNING"}


def test_shadow_promotion_full_rescore_and_revert(local_stack, tmp_path) -> None:
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    tag = uuid.uuid4().hex[:6]
    prefix, names = f"lc{tag}_", f"lc{tag}"
    repo = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL)
    v1 = repo.save(fit_model(n=300, seed=1), {"grades": GRADES, "trained_on": "lifecycle v1"})
    time.sleep(1.1)  # versions are time-stamped to the second
    v2 = repo.save(fit_model(n=300, seed=2), {"grades": GRADES, "trained_on": "lifecycle v2"})
    serving = LocalModelServer(port=free_port(), state_path=str(tmp_path / "serving"), ready_timeout_s=180)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    resources = {
        "kafka": kafka,
        "flink": flink,
        "model_store": LocalModelStore(root=str(tmp_path / "artifacts")),
        "model_serving": serving,
        "warehouse": warehouse,
    }
    pipeline = {"topic_prefix": prefix, "statement_prefix": names, "group_prefix": names, "verify_timeout_s": 180.0}
    scores = [prefix + "lead_scores", prefix + "contact_scores"]
    shadow = prefix + "lead_scores_shadow"
    workers = [
        build_worker(
            "sink",
            profile=Profile.LOCAL,
            kafka=kafka,
            warehouse=warehouse,
            topics=[prefix + "input_raw", *scores, shadow],
            score_topics=scores,
            shadow_topics=[shadow],
            group_id=f"{names}-sink",
            max_wait_s=0.5,
        ),
        build_worker(
            "writeback",
            profile=Profile.LOCAL,
            kafka=kafka,
            warehouse=warehouse,
            crm=LocalCrm(),
            topics=scores,
            score_topics=scores,
            group_id=f"{names}-writeback",
            max_wait_s=0.5,
        ),
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]

    def materialize(assets: list, run_config: dict, **kw: Any) -> dg.ExecuteInMemoryResult:
        return dg.materialize_to_memory(
            assets, resources=resources, run_config={"ops": run_config}, raise_on_error=False, **kw
        )

    def failure(result: dg.ExecuteInMemoryResult) -> str:
        return "; ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)

    try:
        # the champion, as the retraining path deploys it: model_deployment -> flink_statements
        first = materialize(
            [_artifact_asset(v1), model_deployment, streaming_topics, flink_statements],
            {"streaming_topics": {"config": {"topic_prefix": prefix}}, "flink_statements": {"config": pipeline}},
        )
        assert first.success, failure(first)
        for t in threads:
            t.start()

        # a challenger next to it, shadow-scoring the same live stream
        challenger = materialize(
            [challenger_deployment], {"challenger_deployment": {"config": {**pipeline, "version": v2.version}}}
        )
        assert challenger.success, failure(challenger)
        assert served_version(serving.url, challenger_model_name()) == v2.version
        assert served_version(serving.url, "lead_scorer") == v1.version
        jobs = _jobs(local_stack.flink_rest_url, names)
        roles = _roles(jobs, names)
        assert {"shadow-leads", "shadow-contacts", "score-leads", "score-contacts"} <= set(roles)
        champion_jobs = {role: roles[role] for role in ("score-leads", "score-contacts")}

        csv = tmp_path / "leads.csv"
        write_frame(generate_leads(80, seed=31), csv)
        events, _ = load_events(csv, with_outcomes=True)
        created = events[events["_EventType"] == "created"]
        ids = set(created["Id"])
        summary = replay(kafka, frame_records(events), prefix + "input_raw", rate=40.0)
        assert summary.failed == 0

        def both_scored() -> bool:
            got = warehouse.query(
                "SELECT (SELECT COUNT(DISTINCT Id) FROM crm_leads) AS crm, "
                "(SELECT COUNT(DISTINCT Id) FROM lead_score_history WHERE shadow) AS shadow, "
                "(SELECT COUNT(*) FROM crm_leads_raw) AS raw"
            )
            return (
                int(got["crm"][0]) >= len(ids)
                and int(got["shadow"][0]) >= len(ids)
                and int(got["raw"][0]) >= len(events)
            )

        _wait(both_scored, 300, "champion and shadow scores of every lead")
        time.sleep(3)  # the last updated events' scores
        crm = warehouse.query("SELECT Id, Lead_Score_Model__c AS model, Lead_Grade__c AS grade FROM crm_leads")
        assert set(crm["Id"]) == ids
        # the challenger's scores are in the ledger, never in the CRM; the grade is written with the score
        assert set(crm["model"]) == {v1.version}
        assert set(crm["grade"]) <= set("ABCD") and crm["grade"].notna().all()
        ledger = warehouse.query(
            "SELECT shadow, Lead_Score_Model__c AS model, COUNT(DISTINCT Id) AS ids, "
            "COUNT(Lead_Grade__c) AS graded, COUNT(features_hash) AS hashed, COUNT(*) AS n "
            "FROM lead_score_history GROUP BY 1, 2"
        )
        by = {(bool(r.shadow), r.model): r for r in ledger.itertuples()}
        assert set(by) == {(False, v1.version), (True, v2.version)}
        assert by[(True, v2.version)].ids == len(ids) and by[(True, v2.version)].graded == by[(True, v2.version)].n
        assert by[(True, v2.version)].hashed == by[(True, v2.version)].n
        assert int(warehouse.query("SELECT COUNT(*) AS n FROM crm_writeback_errors")["n"][0]) == 0

        # promotion: the comparison (and its blocking gate), the promotion, the full re-score: one job
        # (the gate itself, ECE included, is tested in training/test_few_data.py: here a toy model passes it)
        gate = {
            "min_outcomes": 1,
            "max_auc_drop": 1.0,
            "max_brier_increase": 1.0,
            "max_ece": 1.0,
            "max_ece_increase": 1.0,
        }
        promoted = dg.materialize_to_memory(
            [*ASSETS, challenger_beats_champion],
            selection=[champion_challenger_comparison, champion_promotion, full_rescore],
            resources=resources,
            raise_on_error=False,
            run_config={
                "ops": {
                    "champion_challenger_comparison": {"config": gate},
                    "champion_challenger_comparison_challenger_beats_champion": {"config": gate},
                    "champion_promotion": {"config": pipeline},
                    "full_rescore": {"config": {"topic_prefix": prefix, "chunk_size": 25}},
                }
            },
        )
        assert promoted.success, failure(promoted)
        comparison = promoted.asset_materializations_for_node("champion_challenger_comparison")[0].metadata
        assert comparison["leads_compared"].value == len(ids) and "ROC AUC" in comparison["metrics"].value
        assert repo.production_version() == v2.version
        assert served_version(serving.url, "lead_scorer") == v2.version
        assert served_version(serving.url, challenger_model_name()) is None
        jobs = _jobs(local_stack.flink_rest_url, names)
        # the new champion is served under the running statements: the same jobs, the shadow ones retired
        assert {role: _roles(jobs, names)[role] for role in champion_jobs} == champion_jobs
        assert not [n for n in jobs if "-shadow-" in n]

        open_ids = set(
            warehouse.query(
                "SELECT Id FROM (SELECT Id, LAST_VALUE(IsConverted IGNORE NULLS) OVER (PARTITION BY Id ORDER BY "
                "LastModifiedDate ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS c FROM crm_leads_raw) "
                "WHERE COALESCE(c, FALSE) = FALSE"
            )["Id"]
        )
        assert open_ids and open_ids < ids
        rescored = promoted.asset_materializations_for_node("full_rescore")[0].metadata
        assert rescored["produced_total"].value == len(open_ids) and rescored["status"].value == "done"

        def rescored_in_crm() -> bool:
            crm = warehouse.query("SELECT Id FROM crm_leads WHERE Lead_Score_Model__c = @v", {"v": v2.version})
            return open_ids <= set(crm["Id"])

        _wait(rescored_in_crm, 300, "every open lead's CRM score by the new champion")
        crm = warehouse.query("SELECT Id, Lead_Score_Model__c AS model, Lead_Grade__c AS grade FROM crm_leads")
        assert crm["grade"].notna().all()
        converted = ids - open_ids  # converted leads are not re-scored: their CRM score stays the old champion's
        assert set(crm.loc[crm["Id"].isin(converted), "model"]) <= {v1.version}
        # the same promotion re-scored again: nothing produced
        again = materialize([full_rescore], {"full_rescore": {"config": {"topic_prefix": prefix}}})
        assert again.success, failure(again)
        assert (
            again.asset_materializations_for_node("full_rescore")[0].metadata["produced_in_this_materialization"].value
            == 0
        )
        scored_once = warehouse.query(
            "SELECT Id, COUNT(*) AS n FROM lead_score_history WHERE Lead_Score_Model__c = @v AND NOT shadow "
            "GROUP BY Id HAVING COUNT(*) > 1",
            {"v": v2.version},
        )
        assert scored_once.empty, scored_once.head()

        # revert: one materialization back to v1, then its own re-score
        revert = {"ops": {"champion_revert": {"config": {**pipeline, "to_previous": True}}}}
        reverted = dg.materialize_to_memory(
            [*ASSETS], selection=[champion_revert], resources=resources, raise_on_error=False, run_config=revert
        )
        assert reverted.success, failure(reverted)
        assert repo.production_version() == v1.version
        assert served_version(serving.url, "lead_scorer") == v1.version
        jobs = _jobs(local_stack.flink_rest_url, names)
        assert {role: _roles(jobs, names)[role] for role in champion_jobs} == champion_jobs
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            if t.is_alive():
                t.join(60)
        for jid in _jobs(local_stack.flink_rest_url, names).values():
            httpx.patch(f"{local_stack.flink_rest_url}/jobs/{jid}", params={"mode": "cancel"}, timeout=10)
        serving.stop()
