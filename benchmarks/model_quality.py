"""Model quality on real leads: 5-fold cross-validated ROC AUC and Brier score on the X Education export.

    .venv/bin/python benchmarks/model_quality.py [--csv ../shared/data/x_education_leads_dev.csv]

The export goes through the shipped mapping (data/mappings/x_education.yaml) and the project's own
pipeline, so the leakage fields (Tags, Lead Quality, ...) are never features. For reference, the same
folds also score a plain logistic regression (one-hot + scaled numbers) and gradient boosting.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lead_scoring.contract import CATEGORICAL_FEATURES, FLAG_FEATURES, NUMERIC_FEATURES  # noqa: E402
from lead_scoring.crm.importer import ExportMapping, import_export  # noqa: E402
from lead_scoring.training.model import build_pipeline, features_frame, fit  # noqa: E402


def baseline_logistic():
    cats = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                         OneHotEncoder(handle_unknown="ignore"))
    nums = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return make_pipeline(ColumnTransformer([("c", cats, list(CATEGORICAL_FEATURES)),
                                            ("n", nums, list(NUMERIC_FEATURES)),
                                            ("f", "passthrough", list(FLAG_FEATURES))]),
                         LogisticRegression(max_iter=2000))


def gradient_boosting():
    cats = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                         OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
    pre = ColumnTransformer([("c", cats, list(CATEGORICAL_FEATURES)),
                             ("n", "passthrough", list(NUMERIC_FEATURES)),
                             ("f", "passthrough", list(FLAG_FEATURES))])
    n_cat = len(CATEGORICAL_FEATURES)
    return make_pipeline(pre, HistGradientBoostingClassifier(
        categorical_features=list(range(n_cat)), learning_rate=0.05, max_iter=300, random_state=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "x_education_leads_dev.csv"))
    parser.add_argument("--mapping", default=str(ROOT / "data" / "mappings" / "x_education.yaml"))
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    console = Console()
    if not Path(args.csv).exists():
        console.print(f"[yellow]skipped:[/yellow] {args.csv} not found (pass --csv)")
        return 0
    warnings.filterwarnings("ignore")
    result = import_export(args.csv, ExportMapping.load(args.mapping))
    records = result.records
    X = features_frame(records)
    y = records["IsConverted"].astype(int).to_numpy()
    console.print(f"{len(records):,} leads ({result.counts['rejected']} rejected), "
                  f"{y.mean():.1%} converted, {X.shape[1]} features (no leakage fields)")
    candidates = {
        "lead_scoring model (additive splines)": lambda: build_pipeline(),
        "plain logistic regression": baseline_logistic,
        "gradient boosting": gradient_boosting,
    }
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    table = Table(title=f"{args.folds}-fold cross-validation on {Path(args.csv).name}")
    for column in ("model", "ROC AUC (mean ± sd)", "Brier (mean)", "fit s/fold"):
        table.add_column(column)
    for name, make in candidates.items():
        aucs, briers, seconds = [], [], []
        for train_idx, test_idx in folds.split(X, y):
            started = time.perf_counter()
            model = make()
            if name.startswith("lead_scoring"):
                fit(model, X.iloc[train_idx], y[train_idx])
            else:
                model.fit(X.iloc[train_idx], y[train_idx])
            seconds.append(time.perf_counter() - started)
            proba = model.predict_proba(X.iloc[test_idx])[:, 1]
            aucs.append(roc_auc_score(y[test_idx], proba))
            briers.append(brier_score_loss(y[test_idx], proba))
        table.add_row(name, f"{np.mean(aucs):.4f} ± {np.std(aucs):.4f}", f"{np.mean(briers):.4f}",
                      f"{np.mean(seconds):.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
