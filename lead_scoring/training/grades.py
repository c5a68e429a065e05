"""Lead grades A-D (`Lead_Grade__c`): cut-offs on the served score, fitted on the validation leads.

A grade is a band of the integer score the CRM shows (`Lead_Score__c`, 0-100): A if score >= the A
cut-off, else B if >= the B cut-off, else C if >= the C cut-off, else D. Cutting the served integer
(not the raw probability) keeps grade and score consistent for a sales rep: two leads with the same
score always have the same grade.

How the cut-offs are chosen (`fit_grades`): among all triples of score values, the one whose four
bands best describe who converted on the validation leads, i.e. the maximum-likelihood step function
of the score with four levels (each band's conversion rate as its probability) -- the most
informative four-way split of the score -- subject to two rules a sales team relies on:

* conversion falls strictly from A to D on the validation leads (A > B > C > D), and
* every grade holds at least `min_share` of the validation leads (default 10%), so no grade is an
  empty label and each band's conversion rate rests on enough leads to be meaningful.

Why not fixed quantile bands (top 20% = A, ...): they ignore where conversion actually changes and
can split leads with nearly equal chances into different grades while lumping different ones
together; fixed probability thresholds ignore the validation data altogether. The search is
exhaustive (at most C(100, 3) triples, vectorised), so the optimum is exact and deterministic.

Few leads (few-data mode, `fewest_bands=3`): when no four bands satisfy both rules, three bands A-C are
fitted the same way (C covers every score below B, D is not used) rather than no grades at all; every
band's conversion rate carries a 90% Wilson interval, so a grade read from 30 leads says how sure it is.

Caveat: the conversion rate shown for each grade is measured on the same validation leads that
placed the three cut-offs (3 numbers fitted on ~1,500 leads: a small optimism, not a held-out rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy.special import xlogy

GRADES = ("A", "B", "C", "D")
CUT_GRADES = GRADES[:-1]  # D is everything below the C cut-off
DEFAULT_MIN_SHARE = 0.10
METHOD = (
    "maximum-likelihood 4-band step function of Lead_Score__c on validation leads; "
    "conversion rate strictly falling A > B > C > D; each grade >= min_share of the leads"
)


class GradeFitError(ValueError):
    """No cut-offs satisfy the rules on these validation leads."""


@dataclass(frozen=True)
class GradeScale:
    """Minimum score of grades A, B and C (D: any lower score)."""

    min_score: dict[str, int]

    def __post_init__(self) -> None:
        values = [self.min_score.get(g) for g in CUT_GRADES]
        ok = all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100 for v in values)
        if not ok or not values[0] > values[1] > values[2]:
            raise ValueError(f"grade cut-offs must be integer scores 0-100 with A > B > C, got {self.min_score}")

    def grade(self, score: int) -> str:
        for g in CUT_GRADES:
            if score >= self.min_score[g]:
                return g
        return GRADES[-1]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> GradeScale | None:
        """The scale in a model manifest's `grades` section; None for manifests written before grades."""
        section = manifest.get("grades")
        if section is None:
            return None
        cutoffs = section.get("min_score") if isinstance(section, Mapping) else None
        if not isinstance(cutoffs, Mapping):
            raise ValueError(
                f"manifest of model {manifest.get('version')}: 'grades' has no 'min_score' mapping; "
                "retrain it (lead_scoring_model) or delete the 'grades' section to serve without grades"
            )
        try:
            return cls({g: cutoffs.get(g) for g in CUT_GRADES})
        except ValueError as exc:
            raise ValueError(
                f"manifest of model {manifest.get('version')}: 'grades.min_score' is invalid ({exc}); "
                "retrain it (lead_scoring_model) or delete the 'grades' section"
            ) from None


@dataclass(frozen=True)
class GradeBand:
    grade: str
    min_score: int
    max_score: int
    leads: int
    share: float
    conversion_rate: float
    conversion_low: float = float("nan")  # 90% Wilson interval of the conversion rate
    conversion_high: float = float("nan")


def wilson_interval(converted: int, leads: int, z: float = 1.645) -> tuple[float, float]:
    """The Wilson score interval of a conversion rate (90% for z = 1.645); (nan, nan) without leads."""
    if leads <= 0:
        return float("nan"), float("nan")
    rate = converted / leads
    denominator = 1 + z * z / leads
    centre = (rate + z * z / (2 * leads)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / leads + z * z / (4 * leads * leads)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class GradeFit:
    scale: GradeScale
    bands: list[GradeBand]
    min_share: float
    band_count: int = len(GRADES)

    def manifest_section(self) -> dict[str, Any]:
        """What the model manifest keeps under `grades` (read back by `GradeScale.from_manifest`)."""
        return {
            "score_field": "Lead_Score__c",
            "min_score": dict(self.scale.min_score),
            "method": METHOD,
            "min_share": self.min_share,
            "bands": self.band_count,
            "validation": [asdict(b) for b in self.bands],
        }

    def markdown(self) -> str:
        lines = [
            "| grade | Lead_Score__c | leads | share | validation conversion rate | 90% interval |",
            "|---|---|---|---|---|---|",
        ]
        for b in self.bands:
            if not b.leads:
                continue  # D in a three-band scale
            lines.append(
                f"| {b.grade} | {b.min_score}-{b.max_score} | {b.leads} | {b.share:.1%} | "
                f"{b.conversion_rate:.1%} | {b.conversion_low:.0%}-{b.conversion_high:.0%} |"
            )
        if self.band_count < len(GRADES):
            lines.append(f"\n{self.band_count} grades only: too few leads for four bands with falling conversion")
        return "\n".join(lines)


def bands(scale: GradeScale, scores: np.ndarray, converted: np.ndarray) -> list[GradeBand]:
    """Each grade's score range, size and conversion rate on the given leads."""
    scores = np.asarray(scores, dtype=int)
    converted = np.asarray(converted, dtype=bool)
    upper = 100
    out = []
    for g in GRADES:
        low = scale.min_score.get(g, 0)
        inside = (scores >= low) & (scores <= upper)
        n = int(inside.sum())
        low_rate, high_rate = wilson_interval(int(converted[inside].sum()), n)
        out.append(
            GradeBand(
                g,
                low,
                upper,
                n,
                n / len(scores) if len(scores) else 0.0,
                float(converted[inside].mean()) if n else float("nan"),
                low_rate,
                high_rate,
            )
        )
        upper = low - 1
    return out


def fit_grades(
    scores: np.ndarray, converted: np.ndarray, min_share: float = DEFAULT_MIN_SHARE, fewest_bands: int = len(GRADES)
) -> GradeFit:
    """Cut-offs for A-D on validation leads' integer scores (see the module docstring for the method);
    with `fewest_bands=3`, three bands A-C when four are not possible."""
    if not 0.0 < min_share <= 0.25:
        raise ValueError(f"grade min_share must be in (0, 0.25] (four grades), got {min_share}")
    if fewest_bands not in (3, len(GRADES)):
        raise ValueError(f"fewest_bands must be 3 or {len(GRADES)}, got {fewest_bands}")
    error: GradeFitError | None = None
    for band_count in range(len(GRADES), fewest_bands - 1, -1):
        try:
            return _fit_bands(np.asarray(scores, dtype=int), np.asarray(converted, dtype=bool), min_share, band_count)
        except GradeFitError as exc:
            error = error or exc
    assert error is not None
    raise error


def _fit_bands(scores: np.ndarray, converted: np.ndarray, min_share: float, band_count: int) -> GradeFit:
    n = len(scores)
    values, inverse = np.unique(scores, return_inverse=True)
    if len(values) < band_count:
        raise GradeFitError(
            f"the {n} validation leads have {len(values)} distinct scores; {band_count} grades need "
            f"at least {band_count} (check the model: it barely separates the leads)"
        )
    counts = np.bincount(inverse, minlength=len(values))
    positives = np.bincount(inverse, weights=converted.astype(float), minlength=len(values))
    below_n = np.concatenate([[0], np.cumsum(counts)])  # leads with a score below values[m]
    below_p = np.concatenate([[0.0], np.cumsum(positives)])
    # cut indices (four bands) i < j < k: D = values[:i], C = values[i:j], B = values[j:k], A = values[k:]
    cuts = np.array(list(combinations(range(1, len(values)), band_count - 1)), dtype=int)
    edges = np.column_stack([np.zeros(len(cuts), dtype=int), cuts, np.full(len(cuts), len(values))])
    band_n = np.diff(below_n[edges], axis=1)  # columns: lowest grade first
    band_p = np.diff(below_p[edges], axis=1)
    rate = band_p / band_n
    min_leads = math.ceil(min_share * n)
    feasible = (band_n >= min_leads).all(axis=1) & (np.diff(rate, axis=1) > 0).all(axis=1)
    if not feasible.any():
        raise GradeFitError(
            f"no cut-offs give every grade at least {min_share:.0%} of the {n} validation leads with conversion "
            f"falling from A to {GRADES[band_count - 1]}; lower lead_scoring_model's grade_min_share (now "
            f"{min_share}) or check the model"
        )
    log_likelihood = (xlogy(band_p, rate) + xlogy(band_n - band_p, 1.0 - rate)).sum(axis=1)
    best = cuts[np.flatnonzero(feasible)[np.argmax(log_likelihood[feasible])]]
    if band_count == len(GRADES):
        scale = GradeScale({"A": int(values[best[2]]), "B": int(values[best[1]]), "C": int(values[best[0]])})
    else:  # three bands: C is every score below B, D unused
        scale = GradeScale({"A": int(values[best[1]]), "B": int(values[best[0]]), "C": 0})
    return GradeFit(scale, bands(scale, scores, converted), min_share, band_count)
