"""Model quality on real leads: every candidate model family side by side, in one run.

    .venv/bin/python benchmarks/model_quality.py [--csv ../shared/data/x_education_leads_dev.csv] [--folds 5]

The X Education export goes through the shipped mapping (data/mappings/x_education.yaml) into a
throw-away DuckDB warehouse, and the training split comes from the project's own training SQL
(lead_scoring/training/sql/training_data.sql: train on the oldest 80% by CreatedDate, validate on the
newest 20%), so the leakage fields (Tags, Lead Quality, ...) are never features. Per candidate:

* time split: ROC AUC, PR AUC, Brier and log loss on the validation leads, trained on the others;
* "Lead Number split": the same with the CRM's lead number as the clock (see the note below);
* k-fold stratified cross-validation ROC AUC, mean +- sd, over all leads;
* exactness: max |base + sum of contributions - the library's own logit| and max |served probability
  - predict_proba| on the validation leads;
* serving cost of `LeadScorer.score_records` (score + top-3 reasons): ms per record, one record per
  call (the Flink path) and 100 records per call, median over repeated calls.

Two reference models without per-lead reasons (plain logistic regression, scikit-learn gradient
boosting) score the same splits and folds. Everything runs single-threaded (as the families train and
serve). Results also go to benchmarks/results/ (JSON + markdown).

Note on time: the export has no timestamps, so the importer gives each lead CreatedDate = end - a
seeded uniform random offset (lead_scoring/crm/importer.py, `timestamps` in the mapping): not row
order, and unrelated to the lead. The "time split" is therefore in effect a random 20% hold-out. The
export's Lead Number, if the CRM assigned it in sequence, is the closest thing to a real clock, hence
the extra column.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from lead_scoring.contract import CATEGORICAL_FEATURES, FLAG_FEATURES, LABEL, NUMERIC_FEATURES
from lead_scoring.crm.importer import ExportMapping, import_export
from lead_scoring.settings import project_root
from lead_scoring.training.assets import Candidate, select_candidate
from lead_scoring.training.evaluation import classification_metrics
from lead_scoring.training.grades import fit_grades
from lead_scoring.training.model import (
    FAMILIES,
    LeadScorer,
    ModelParams,
    build_pipeline,
    features_frame,
    fit,
    model_logit,
)
from lead_scoring.training.queries import training_data_sql
from lead_scoring.warehouse.resources import DuckDBWarehouse

ROOT = project_root()


def baseline_logistic():
    cats = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"), OneHotEncoder(handle_unknown="ignore")
    )
    nums = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return make_pipeline(
        ColumnTransformer(
            [
                ("c", cats, list(CATEGORICAL_FEATURES)),
                ("n", nums, list(NUMERIC_FEATURES)),
                ("f", "passthrough", list(FLAG_FEATURES)),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )


def sklearn_gradient_boosting():
    cats = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    )
    pre = ColumnTransformer(
        [
            ("c", cats, list(CATEGORICAL_FEATURES)),
            ("n", "passthrough", list(NUMERIC_FEATURES)),
            ("f", "passthrough", list(FLAG_FEATURES)),
        ]
    )
    return make_pipeline(
        pre,
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(CATEGORICAL_FEATURES))),
            learning_rate=0.05,
            max_iter=300,
            random_state=0,
        ),
    )


def time_split(records: pd.DataFrame, validation_fraction: float) -> pd.DataFrame:
    """The training SQL's own rows and split, run on a temporary DuckDB warehouse."""
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = DuckDBWarehouse(path=str(Path(tmp) / "bench.duckdb"))
        warehouse.ensure_tables()
        warehouse.append("crm_leads_raw", records.assign(_source="benchmark", _ingested_at=pd.Timestamp.now(tz="UTC")))
        frame = warehouse.query(training_data_sql(validation_fraction))
    frame[LABEL] = frame[LABEL].astype(bool)
    return frame


def lead_number_split(records: pd.DataFrame, validation_fraction: float) -> pd.DataFrame:
    frame = records.assign(_n=pd.to_numeric(records["Lead_Number__c"])).sort_values(["_n", "Id"])
    rank = np.arange(len(frame)) / max(1, len(frame) - 1)
    frame = frame.assign(split=np.where(rank >= 1.0 - validation_fraction, "validation", "train")).drop(columns="_n")
    frame[LABEL] = frame[LABEL].astype(bool)
    return frame


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    x = features_frame(frame)
    return x.astype(object).where(x.notna(), None).to_dict(orient="records")


def latency_ms(scorer: LeadScorer, records: list[dict[str, Any]], batch: int, calls: int) -> float:
    """Median ms per record of score_records over `calls` calls of `batch` records each."""
    scorer.score_records(records[:batch])  # warm-up
    per_record = []
    for i in range(calls):
        start = (i * batch) % max(1, len(records) - batch)
        chunk = records[start : start + batch]
        started = time.perf_counter()
        scorer.score_records(chunk)
        per_record.append((time.perf_counter() - started) * 1000 / len(chunk))
    return statistics.median(per_record)


def evaluate(
    name: str,
    make: Callable[[], Any],
    family: str | None,
    split: pd.DataFrame,
    by_number: pd.DataFrame,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: StratifiedKFold,
    fit_model: Callable,
) -> dict[str, Any]:
    train, valid = split[split["split"] == "train"], split[split["split"] == "validation"]
    y_valid = valid[LABEL].astype(int).to_numpy()
    started = time.perf_counter()
    model = fit_model(make(), features_frame(train), train[LABEL].astype(int).to_numpy())
    fit_seconds = time.perf_counter() - started
    proba = model.predict_proba(features_frame(valid))[:, 1]
    row: dict[str, Any] = {
        "model": name,
        "family": family,
        "exact_reasons": family is not None,
        "fit_seconds": round(fit_seconds, 2),
        "time_split": classification_metrics(y_valid, proba),
    }
    n_train, n_valid = by_number[by_number["split"] == "train"], by_number[by_number["split"] == "validation"]
    by_n = fit_model(make(), features_frame(n_train), n_train[LABEL].astype(int).to_numpy())
    row["lead_number_split"] = classification_metrics(
        n_valid[LABEL].astype(int).to_numpy(), by_n.predict_proba(features_frame(n_valid))[:, 1]
    )
    aucs = []
    for train_idx, test_idx in folds.split(X, y):
        fold_model = fit_model(make(), X.iloc[train_idx], y[train_idx])
        aucs.append(classification_metrics(y[test_idx], fold_model.predict_proba(X.iloc[test_idx])[:, 1])["roc_auc"])
    row["cv_roc_auc"] = {"mean": float(np.mean(aucs)), "sd": float(np.std(aucs)), "folds": [float(a) for a in aucs]}
    if family is not None:
        scorer = LeadScorer(model, "benchmark")
        records = as_records(valid)
        explanation = scorer.explain(records)
        served = np.array([s.probability for s in scorer.score_records(records)])
        row["max_abs_logit_error"] = float(np.abs(explanation.logits - model_logit(model, features_frame(valid))).max())
        row["max_abs_probability_error"] = float(np.abs(served - proba).max())
        row["ms_per_record_single"] = latency_ms(scorer, records, batch=1, calls=1000)
        row["ms_per_record_batch100"] = latency_ms(scorer, records, batch=100, calls=30)
        scores = np.array([s.score for s in scorer.score_records(records)])
        row["grades"] = [vars(b) for b in fit_grades(scores, y_valid.astype(bool)).bands]
        row["_candidate"] = Candidate(family, None, {}, row["time_split"], fit_seconds, row["ms_per_record_single"])
    return row


def fit_plain(model: Any, frame: pd.DataFrame, labels: np.ndarray) -> Any:
    return model.fit(frame, labels)


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| model | exact reasons | time-split ROC AUC | Lead Number split ROC AUC | CV ROC AUC (mean ± sd) | "
        "Brier (time split) | max logit error | ms/record, 1 per call | ms/record, 100 per call | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        exact = "yes" if r["exact_reasons"] else "no"
        logit_error = f"{r['max_abs_logit_error']:.1e}" if "max_abs_logit_error" in r else "—"
        single = f"{r['ms_per_record_single']:.3f}" if "ms_per_record_single" in r else "—"
        batch = f"{r['ms_per_record_batch100']:.3f}" if "ms_per_record_batch100" in r else "—"
        lines.append(
            f"| {r['model']} | {exact} | {r['time_split']['roc_auc']:.4f} | "
            f"{r['lead_number_split']['roc_auc']:.4f} | "
            f"{r['cv_roc_auc']['mean']:.4f} ± {r['cv_roc_auc']['sd']:.4f} | "
            f"{r['time_split']['brier_score']:.4f} | {logit_error} | {single} | {batch} | "
            f"{r['fit_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "x_education_leads_dev.csv"))
    parser.add_argument("--mapping", default=str(ROOT / "data" / "mappings" / "x_education.yaml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--no-references", action="store_true", help="only the model families (faster)")
    args = parser.parse_args()
    console = Console(width=200)  # the side-by-side table is wide; do not wrap it in pipes and logs
    if not Path(args.csv).exists():
        console.print(f"[yellow]skipped:[/yellow] {args.csv} not found (pass --csv)")
        return 0
    warnings.filterwarnings("ignore")
    result = import_export(args.csv, ExportMapping.load(args.mapping))
    records = result.records
    split = time_split(records, args.validation_fraction)
    by_number = lead_number_split(records, args.validation_fraction)
    X = features_frame(split)
    y = split[LABEL].astype(int).to_numpy()
    valid = split[split["split"] == "validation"]
    console.print(
        f"{len(split):,} leads ({result.counts['rejected']} rejected), {y.mean():.1%} converted; "
        f"time split: {len(valid):,} validation leads created from {valid['CreatedDate'].min()}"
    )
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)

    # One thread everywhere, as the families train and serve: on this shared 2-core machine an OpenMP team
    # spinning while another process holds a core made one HistGradientBoosting fit take 0.5 s or 70 s.
    limits = threadpool_limits(limits=1)
    rows = []
    for family in FAMILIES:
        console.print(f"  {family} ...")
        rows.append(
            evaluate(
                family,
                lambda f=family: build_pipeline(ModelParams(family=f)),
                family,
                split,
                by_number,
                X,
                y,
                folds,
                fit,
            )
        )
    if not args.no_references:
        for name, make in (
            ("reference: plain logistic regression", baseline_logistic),
            ("reference: sklearn gradient boosting", sklearn_gradient_boosting),
        ):
            console.print(f"  {name} ...")
            rows.append(evaluate(name, make, None, split, by_number, X, y, folds, fit_plain))

    limits.restore_original_limits()
    chosen = select_candidate([r["_candidate"] for r in rows if "_candidate" in r], min_auc_gain=0.002)
    table = Table(
        title=f"Candidates on {Path(args.csv).name}: time split (newest {args.validation_fraction:.0%} "
        f"by CreatedDate), {args.folds}-fold CV, serving cost"
    )
    for column in (
        "model",
        "exact reasons",
        "time-split AUC",
        "Lead No. split AUC",
        f"{args.folds}-fold CV AUC",
        "Brier",
        "max |logit err|",
        "ms/rec ×1",
        "ms/rec ×100",
        "fit s",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["model"],
            "yes" if r["exact_reasons"] else "no",
            f"{r['time_split']['roc_auc']:.4f}",
            f"{r['lead_number_split']['roc_auc']:.4f}",
            f"{r['cv_roc_auc']['mean']:.4f} ± {r['cv_roc_auc']['sd']:.4f}",
            f"{r['time_split']['brier_score']:.4f}",
            f"{r['max_abs_logit_error']:.1e}" if "max_abs_logit_error" in r else "—",
            f"{r['ms_per_record_single']:.3f}" if "ms_per_record_single" in r else "—",
            f"{r['ms_per_record_batch100']:.3f}" if "ms_per_record_batch100" in r else "—",
            f"{r['fit_seconds']:.2f}",
        )
    console.print(table)
    console.print(f"the training asset's selection (min_auc_gain 0.002) would ship: [bold]{chosen.family}[/bold]")
    for r in rows:
        if "grades" in r:
            console.print(
                f"grades of {r['model']} on the validation leads: "
                + ", ".join(
                    f"{g['grade']} {g['min_score']}-{g['max_score']} ({g['share']:.0%} of leads, "
                    f"{g['conversion_rate']:.0%} converted)"
                    for g in r["grades"]
                )
            )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    report = {
        "created_at": stamp.isoformat(),
        "csv": str(args.csv),
        "leads": len(split),
        "validation_leads": len(valid),
        "folds": args.folds,
        "chosen_family": chosen.family,
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    }
    (out / "model_quality.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "model_quality.md").write_text(
        markdown(rows, f"Model quality, {stamp:%Y-%m-%d %H:%M} UTC, {len(split):,} leads") + "\n"
    )
    console.print(f"results: {out / 'model_quality.json'}, {out / 'model_quality.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
