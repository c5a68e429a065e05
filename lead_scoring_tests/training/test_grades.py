"""Grade cut-offs: fitted on validation scores, monotonic, stored in and read back from a manifest."""

import numpy as np
import pytest

from lead_scoring.training.grades import GRADES, GradeFitError, GradeScale, bands, fit_grades


def _clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four score clusters with very different conversion rates: the right cut-offs are obvious."""
    parts = [(8, 400, 0.03), (35, 250, 0.30), (62, 200, 0.60), (93, 150, 0.92)]
    scores = np.concatenate([np.full(n, s) for s, n, _ in parts])
    converted = np.concatenate([rng.random(n) < p for _, n, p in parts])
    return scores, converted


def test_cut_offs_land_between_clearly_different_groups():
    scores, converted = _clusters(np.random.default_rng(0))
    fit = fit_grades(scores, converted)
    assert fit.scale.min_score == {"A": 93, "B": 62, "C": 35}
    assert [b.leads for b in fit.bands] == [150, 200, 250, 400]
    assert [b.grade for b in fit.bands] == list(GRADES)
    assert fit.bands[0].min_score == 93 and fit.bands[0].max_score == 100 and fit.bands[-1].min_score == 0


def test_rates_fall_from_a_to_d_and_every_grade_has_its_share():
    rng = np.random.default_rng(1)
    p = rng.beta(0.7, 1.1, 3000)  # a calibrated, bimodal-ish score like the real one
    scores = np.rint(p * 100).astype(int)
    converted = rng.random(3000) < p
    for min_share in (0.05, 0.10, 0.20):
        fit = fit_grades(scores, converted, min_share)
        rates = [b.conversion_rate for b in fit.bands]
        assert rates == sorted(rates, reverse=True) and len(set(rates)) == 4
        assert all(b.share >= min_share for b in fit.bands)
        assert sum(b.leads for b in fit.bands) == 3000
        assert all(
            fit.scale.grade(s) == g for b in fit.bands for s, g in [(b.min_score, b.grade), (b.max_score, b.grade)]
        )


def test_non_monotonic_groups_are_not_split_apart():
    # two middle clusters in the wrong order: splitting them would make C convert better than B
    parts = [(10, 300, 0.05), (40, 300, 0.60), (60, 300, 0.40), (90, 300, 0.95)]
    rng = np.random.default_rng(2)
    scores = np.concatenate([np.full(n, s) for s, n, _ in parts])
    converted = np.concatenate([rng.random(n) < p for _, n, p in parts])
    with pytest.raises(GradeFitError, match="grade_min_share"):
        fit_grades(scores, converted, min_share=0.2)


def test_too_few_distinct_scores_is_a_clear_error():
    with pytest.raises(GradeFitError, match="distinct scores"):
        fit_grades(np.array([10, 10, 90, 90, 50]), np.array([0, 0, 1, 1, 0], dtype=bool))
    with pytest.raises(ValueError, match="min_share"):
        fit_grades(np.arange(100), np.arange(100) > 50, min_share=0.3)


def test_manifest_round_trip_and_old_manifests():
    scores, converted = _clusters(np.random.default_rng(0))
    fit = fit_grades(scores, converted)
    manifest = {"version": "m1", "grades": fit.manifest_section()}
    scale = GradeScale.from_manifest(manifest)
    assert scale == fit.scale
    assert manifest["grades"]["validation"][0]["grade"] == "A"
    assert GradeScale.from_manifest({"version": "m0"}) is None  # written before grades: no grade
    assert [scale.grade(s) for s in (100, 93, 92, 62, 61, 35, 34, 0)] == ["A", "A", "B", "B", "C", "C", "D", "D"]
    assert bands(scale, scores, converted) == fit.bands


@pytest.mark.parametrize(
    "section",
    [
        {"min_score": {"A": 50, "B": 60, "C": 10}},
        {"min_score": {"A": 90, "B": 60}},
        {"min_score": {"A": 101, "B": 60, "C": 10}},
        {"min_score": {"A": "90", "B": 60, "C": 10}},
        {"cutoffs": [90, 60, 10]},
        "A>90",
    ],
)
def test_a_broken_grades_section_names_the_fix(section):
    with pytest.raises(ValueError, match="manifest of model m9.*(retrain|delete)"):
        GradeScale.from_manifest({"version": "m9", "grades": section})
