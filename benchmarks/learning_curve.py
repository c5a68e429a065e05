"""Learning curve on real leads: what each model family (and the training asset's pick) is worth with few conversions.

    nice -n 10 .venv/bin/python benchmarks/learning_curve.py [--csv ../shared/data/x_education_leads_dev.csv]
        [--sizes 20 40 80 120 160 320 0] [--test-fraction 0.3] [--resamples 200]

The X Education export goes through the shipped mapping (data/mappings/x_education.yaml). Leads are put in
the dataset's real order, by Lead Number; the newest `--test-fraction` of them is the test split, the same
for every size. For each size (20, 40, 80, 120, 160, 320 conversions and all; 0 means all) the training leads
are the earliest leads up to the one that brings that many conversions, as a team adopting lead scoring
would have them. On each, and always scored on the same later test leads:

* every family of `lead_scoring.training.model.FAMILIES` with its default hyperparameters, fitted on all
  the training leads (`<family> default`), and with its few-data hyperparameters (`<family> few-data`);
* the training asset's own logic (`lead_scoring.training.fitting`: few-data mode or not, cross-fitting,
  Platt calibration, selection, grade cut-offs), per family alone (`asset: <family>`) and with every family
  competing (`asset pick`), its validation split the newest 20% of the training leads by Lead Number, with
  the quality gate's verdict on it (`quality_problems`, no champion).

Per row: ROC AUC, ECE (10 equal-width bins, the score read as a probability) and Brier on the test leads
with 90% bootstrap intervals (`--resamples` resamples of the test leads), and for the asset rows the
grades: the cut-offs fitted at training time applied to the test scores, each grade's test conversion
rate, and whether conversion falls strictly from A down (grade monotonicity).

Per size, `coverage`: the test leads whose value of a segment field (`COVERAGE_FIELDS`) the training leads
hold fewer than `--min-seen` times (a model cannot learn a segment it saw once): their share, conversion
and the asset pick's mean score, and the asset pick's metrics on the other test leads ("covered"). A
diagnosis of where the small model fails, measured after training; nothing is tuned on it.

Single-threaded. Results go to benchmarks/results/learning_curve.json with the commit, the command and the
machine probe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import provenance
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from lead_scoring.contract import FEATURES, LABEL
from lead_scoring.crm.importer import ExportMapping, import_export
from lead_scoring.settings import project_root
from lead_scoring.training.assets import QualityGateConfig, TrainedModel, quality_problems
from lead_scoring.training.evaluation import bootstrap_intervals, classification_metrics
from lead_scoring.training.features import MISSING
from lead_scoring.training.fitting import (
    FitSettings,
    calibrated_enough,
    few_data_params,
    intervals,
    is_few_data,
    select_candidate,
    served_scores,
    train_candidate,
)
from lead_scoring.training.grades import GradeFitError, GradeScale, bands, fit_grades
from lead_scoring.training.model import FAMILIES, ModelParams, build_pipeline, features_frame, fit, probability

ROOT = project_root()
COVERAGE_FIELDS = ("Lead_Origin__c", "LeadSource")  # how a lead arrived: segments that convert very differently


def ordered_leads(csv: str, mapping: str) -> pd.DataFrame:
    records = import_export(csv, ExportMapping.load(mapping)).records
    records = records[records[LABEL].notna()].copy()
    records[LABEL] = records[LABEL].astype(bool)
    records["_n"] = pd.to_numeric(records["Lead_Number__c"])
    return records.sort_values(["_n", "Id"]).reset_index(drop=True)


def earliest_with(pool: pd.DataFrame, conversions: int) -> pd.DataFrame:
    """The earliest leads up to the one that brings `conversions` conversions (all of them for 0)."""
    if conversions <= 0:
        return pool
    reached = np.flatnonzero(pool[LABEL].astype(int).cumsum().to_numpy() >= conversions)
    if not len(reached):
        raise ValueError(f"the training pool holds fewer than {conversions} conversions; lower --sizes")
    return pool.iloc[: reached[0] + 1]


def with_split(train: pd.DataFrame, validation_fraction: float = 0.2) -> pd.DataFrame:
    """The training SQL's split (newest share held out), with Lead Number as the clock."""
    rank = np.arange(len(train)) / max(1, len(train) - 1)
    return train.assign(split=np.where(rank >= 1.0 - validation_fraction, "validation", "train"))


def test_metrics(y: np.ndarray, proba: np.ndarray, resamples: int) -> dict[str, Any]:
    m = classification_metrics(y, proba)
    return {
        "roc_auc": m["roc_auc"],
        "ece": m["ece"],
        "brier_score": m["brier_score"],
        "ci90": bootstrap_intervals(y, proba, resamples),
    }


def graded(scale: GradeScale, y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    test_bands = [b for b in bands(scale, served_scores(proba), y.astype(bool)) if b.leads]
    rates = [b.conversion_rate for b in test_bands]
    return {
        "cutoffs": scale.min_score,
        "grades": len(test_bands),
        "test_conversion": {b.grade: round(b.conversion_rate, 4) for b in test_bands},
        "test_share": {b.grade: round(b.share, 4) for b in test_bands},
        "monotone": bool(all(a > b for a, b in zip(rates, rates[1:], strict=False))),
    }


def asset_rows(
    train: pd.DataFrame, x_test: pd.DataFrame, y_test: np.ndarray, settings: FitSettings, resamples: int
) -> list[dict[str, Any]]:
    """The training asset's logic, per family alone and all competing (`asset pick`)."""
    frame = with_split(train)
    few, why = is_few_data(frame, settings)
    candidates, rows = [], []
    for family in FAMILIES:
        started = time.perf_counter()
        candidate, evaluation = train_candidate(family, ModelParams(family=family), frame, few, settings)
        candidate.fit_seconds = time.perf_counter() - started
        candidates.append((candidate, evaluation))
    chosen = select_candidate(
        [c for c, _ in candidates], min_auc_gain=0.002, eligible=lambda c: calibrated_enough(c, few, settings)
    )
    for candidate, evaluation in candidates + [(c, e) for c, e in candidates if c is chosen]:
        name = "asset pick" if len(rows) == len(candidates) else f"asset: {candidate.family}"
        proba = probability(candidate.pipeline, x_test)
        row: dict[str, Any] = {
            "model": name,
            "family": candidate.family,
            "few_data_mode": few,
            "mode_reason": why,
            "calibrated": candidate.calibration["applied"],
            "fit_seconds": round(candidate.fit_seconds, 2),
            "test": test_metrics(y_test, proba, resamples),
            "training_estimate": {k: candidate.metrics[k] for k in ("roc_auc", "ece")},
            "test_proba": proba,  # for the coverage diagnosis; not written to the results
        }
        fitted = None
        try:
            fitted = fit_grades(
                served_scores(candidate.evaluation_proba),
                evaluation[LABEL].astype(bool).to_numpy(),
                fewest_bands=3 if few else 4,
            )
            row["grading"] = graded(fitted.scale, y_test, proba)
        except GradeFitError as exc:
            row["grading"] = {"error": str(exc)}
        # the training gate's own verdict on this model (no champion: a team's first model)
        trained = TrainedModel(
            candidate.pipeline,
            candidate.params,
            candidate.metrics,
            list(FEATURES),
            {},
            family=candidate.family,
            few_data_mode=few,
            calibration=candidate.calibration,
            grades=fitted.manifest_section() if fitted else None,
            intervals=intervals(candidate, evaluation, settings),
        )
        row["training_estimate"]["intervals_90"] = trained.intervals
        row["gate"] = "; ".join(quality_problems(QualityGateConfig(), trained)) or "passes"
        rows.append(row)
    return rows


def plain_rows(train: pd.DataFrame, x_test: pd.DataFrame, y_test: np.ndarray, resamples: int) -> list[dict[str, Any]]:
    rows = []
    for family in FAMILIES:
        for label, params in (
            ("default", ModelParams(family=family)),
            ("few-data", few_data_params(ModelParams(family=family))),
        ):
            started = time.perf_counter()
            model = fit(build_pipeline(params), features_frame(train), train[LABEL])
            rows.append(
                {
                    "model": f"{family} {label}",
                    "family": family,
                    "fit_seconds": round(time.perf_counter() - started, 2),
                    "test": test_metrics(y_test, probability(model, x_test), resamples),
                }
            )
    return rows


def coverage(
    train: pd.DataFrame, test: pd.DataFrame, proba: np.ndarray, min_seen: int, resamples: int
) -> dict[str, Any]:
    """Test leads in segments the training leads hold fewer than `min_seen` of, and the metrics on the rest."""
    y = test[LABEL].astype(int).to_numpy()
    thin = np.zeros(len(test), dtype=bool)
    fields: dict[str, Any] = {}
    for name in COVERAGE_FIELDS:
        seen = train[name].fillna(MISSING).astype(str).value_counts()
        values = test[name].fillna(MISSING).astype(str)
        rare = values.map(lambda v, seen=seen: int(seen.get(v, 0)) < min_seen).to_numpy()
        thin |= rare
        fields[name] = {
            value: {
                "seen_in_training": int(seen.get(value, 0)),
                "test_leads": int((values == value).sum()),
                "test_conversion": round(float(y[(values == value).to_numpy()].mean()), 4),
                "mean_score": round(float(proba[(values == value).to_numpy()].mean()), 4),
            }
            for value in sorted(set(values[rare]))
        }
    covered = ~thin
    return {
        "min_seen": min_seen,
        "thin_share": round(float(thin.mean()), 4),
        "thin_conversion": round(float(y[thin].mean()), 4) if thin.any() else None,
        "thin_mean_score": round(float(proba[thin].mean()), 4) if thin.any() else None,
        "thin_segments": fields,
        "covered": test_metrics(y[covered], proba[covered], resamples),
        "covered_leads": int(covered.sum()),
    }


def ci(metric: dict[str, Any], name: str) -> str:
    low, high = metric["ci90"][name]
    return f"{metric[name]:.3f} [{low:.3f}-{high:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "x_education_leads_dev.csv"))
    parser.add_argument("--mapping", default=str(ROOT / "data" / "mappings" / "x_education.yaml"))
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[20, 40, 80, 120, 160, 320, 0],
        help="conversions in the training leads (0: all)",
    )
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the test leads")
    parser.add_argument(
        "--min-seen", type=int, default=5, help="coverage: a segment value with fewer training leads is thin"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learning_curve.json"))
    args = parser.parse_args()
    console = Console(width=200)
    if not Path(args.csv).exists():
        console.print(f"[yellow]skipped:[/yellow] {args.csv} not found (pass --csv)")
        return 0
    warnings.filterwarnings("ignore")
    limits = threadpool_limits(limits=1)
    started = time.perf_counter()
    leads = ordered_leads(args.csv, args.mapping)
    n_test = int(round(len(leads) * args.test_fraction))
    pool, test = leads.iloc[:-n_test], leads.iloc[-n_test:]
    x_test, y_test = features_frame(test), test[LABEL].astype(int).to_numpy()
    console.print(
        f"{len(leads):,} leads by Lead Number; test: the newest {len(test):,} (Lead Number "
        f"{int(test['_n'].min())}-{int(test['_n'].max())}, {y_test.mean():.1%} converted)"
    )
    settings = FitSettings()
    sizes = []
    for conversions in args.sizes:
        train = earliest_with(pool, conversions)
        console.print(f"  {int(train[LABEL].sum())} conversions ({len(train)} leads) ...")
        rows = plain_rows(train, x_test, y_test, args.resamples) + asset_rows(
            train, x_test, y_test, settings, args.resamples
        )
        pick = next(r for r in rows if r["model"] == "asset pick")
        sizes.append(
            {
                "conversions": int(train[LABEL].sum()),
                "leads": len(train),
                "rows": rows,
                "coverage": coverage(train, test, pick.pop("test_proba"), args.min_seen, args.resamples),
            }
        )
        for r in rows:
            r.pop("test_proba", None)
    limits.restore_original_limits()

    table = Table(title=f"Learning curve: test = newest {len(test):,} leads by Lead Number; value [90% bootstrap CI]")
    for column in (
        "conversions (leads)",
        "model",
        "ROC AUC",
        "ECE",
        "Brier",
        "grades: test conversion",
        "monotone",
        "gate",
    ):
        table.add_column(column)
    for size in sizes:
        for r in size["rows"]:
            grading = r.get("grading", {})
            rates = ", ".join(f"{g} {v:.0%}" for g, v in grading.get("test_conversion", {}).items())
            table.add_row(
                f"{size['conversions']} ({size['leads']})",
                r["model"] + (" (few-data)" if r.get("few_data_mode") else ""),
                ci(r["test"], "roc_auc"),
                ci(r["test"], "ece"),
                ci(r["test"], "brier_score"),
                rates or grading.get("error", "")[:40],
                str(grading.get("monotone", "")),
                r.get("gate", "")[:60],
            )
    console.print(table)
    thin_table = Table(
        title=f"Coverage: test leads whose {' or '.join(COVERAGE_FIELDS)} the training leads hold fewer than "
        f"{args.min_seen} times; the asset pick on them and on the rest"
    )
    for column in ("conversions", "thin share", "thin: converted / mean score", "covered: ROC AUC", "covered: ECE"):
        thin_table.add_column(column)
    for size in sizes:
        cov = size["coverage"]
        thin = (
            f"{cov['thin_conversion']:.0%} / {cov['thin_mean_score']:.0%}" if cov["thin_conversion"] is not None else ""
        )
        thin_table.add_row(
            str(size["conversions"]),
            f"{cov['thin_share']:.1%}",
            thin,
            ci(cov["covered"], "roc_auc"),
            ci(cov["covered"], "ece"),
        )
    console.print(thin_table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "created_at": datetime.now(UTC).isoformat(),
        **provenance(sys.argv),
        "csv": str(args.csv),
        "leads": len(leads),
        "test_leads": len(test),
        "test_positive_rate": float(y_test.mean()),
        "bootstrap_resamples": args.resamples,
        "seconds": round(time.perf_counter() - started, 1),
        "sizes": sizes,
    }
    out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"results: {out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
