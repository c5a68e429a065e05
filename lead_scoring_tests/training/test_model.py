"""The additive model: exact compiled scoring, per-record reasons, learnable synthetic data."""

import numpy as np
import pytest

from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.training.evaluation import classification_metrics, top_decile_lift
from lead_scoring.training.model import LeadScorer, ModelParams, build_pipeline, features_frame, fit


@pytest.fixture(scope="module")
def trained():
    leads = generate_leads(3000, seed=21)
    leads = leads[leads["IsConverted"].notna()]
    train, valid = leads.iloc[:2000], leads.iloc[2000:]
    pipeline = fit(build_pipeline(ModelParams()), features_frame(train), train["IsConverted"])
    return pipeline, valid


def test_compiled_scorer_matches_predict_proba(trained):
    pipeline, valid = trained
    scorer = LeadScorer(pipeline, "m-test")
    expected = pipeline.predict_proba(features_frame(valid))[:, 1]
    got = np.array([s.probability for s in scorer.score_frame(valid)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # the fast path is really in use (it silently falls back to sklearn only if the layout changed)
    assert all(term._compiled for term in scorer._numeric_terms.values())
    assert all(0 <= s.score <= 100 for s in scorer.score_frame(valid))


def test_reasons_are_per_record_and_signed(trained):
    pipeline, valid = trained
    scorer = LeadScorer(pipeline, "m-test")
    form = dict(valid.iloc[0].to_dict(), Lead_Origin__c="Lead Add Form", Occupation__c="Working Professional",
                Last_Activity__c="SMS Sent")
    bounced = dict(valid.iloc[0].to_dict(), Lead_Origin__c="API", Occupation__c=None,
                   Last_Activity__c="Email Bounced", Time_On_Website__c=0.0)
    hot, cold = scorer.score_records([form, bounced])
    assert hot.score > cold.score + 30
    assert "+Lead Add Form" in hot.reasons and "+Working Professional" in hot.reasons
    assert any(r.startswith("-") for r in cold.reasons)
    assert "-Email Bounced" in cold.reasons or "-occupation unknown" in cold.reasons
    assert len(hot.reasons) <= 3


def test_unknown_categories_and_missing_numbers_score(trained):
    pipeline, valid = trained
    scorer = LeadScorer(pipeline, "m-test")
    odd = dict(valid.iloc[1].to_dict(), LeadSource="A source never seen", Total_Visits__c=None)
    [score] = scorer.score_records([odd])
    assert 0 <= score.score <= 100
    expected = pipeline.predict_proba(features_frame([odd]))[:, 1][0]
    assert score.probability == pytest.approx(expected, abs=1e-9)


def test_synthetic_signal_is_learned(trained):
    pipeline, valid = trained
    proba = pipeline.predict_proba(features_frame(valid))[:, 1]
    metrics = classification_metrics(valid["IsConverted"].astype(int).to_numpy(), proba)
    assert metrics["roc_auc"] > 0.8
    assert metrics["top_decile_lift"] > 1.8
    assert metrics["brier_score"] < 0.2


def test_top_decile_lift_by_hand():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1] * 2)
    proba = np.linspace(1, 0, 20)
    assert top_decile_lift(y, proba) == pytest.approx(0.5 / 0.2)
