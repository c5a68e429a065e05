"""Few-data trials (issue 32): priors, semi-supervision and shrinkage at 40 and 120 conversions, dev then test.

    nice -n 19 .venv/bin/python benchmarks/few_data_trials.py [--csv ../shared/data/x_education_leads_dev.csv]
        [--sizes 40 120] [--stage dev|test]

The leads and splits of benchmarks/learning_curve.py: the X Education export in Lead Number order, the newest
30% the test split. Inside the older 70% (the "pool", 5,174 leads) this script keeps apart:

* training: the earliest pool leads holding `--sizes` conversions (115 leads at 40, 331 at 120);
* "other leads": pool positions 500-2,499, used only by the pooled-prior variant (a stand-in for a global
  model trained on other teams' leads: disjoint from the training, dev and test leads);
* dev: pool positions 2,500-5,173, where variants and their settings are compared and chosen;
* test: the learning curve's test split, read only with `--stage test` after the choices were made on dev.

Variants (every one Platt-calibrated out of fold as the training asset does, `fitting.train_candidate`):

* `shipped`: the training asset's pick (few-data mode) at the checked-out commit (before the prior: the
  reference the variants were compared with; from f772897 on, the prior-fitted model itself);
* `product`: the form the product ships (lead_scoring/training/prior.py, `additive.fit`): one basis, the
  prior's coefficients fitted on the synthetic leads, the team's leads fitted with L2 on the difference from
  them, for prior strengths C 0.1-3;
* `synthetic prior`: an additive model fitted on leads of the project's synthetic generator
  (lead_scoring/crm/synthetic.py), alone (its log-odds re-based on the training leads by Platt), and as the
  offset of a local few-data additive model whose L2 penalty shrinks the local terms toward the prior
  (Bayesian logistic regression with the prior as mean); the prior's weight is fixed to 1 (`offset`) or
  fitted (`learned weight`). Caveat: the generator's effects were set by hand from the public X Education
  analyses, so this prior is not independent of the test period's dataset (see docs/training.md);
* `pooled prior`: the same, with the prior fitted on the "other leads" above;
* `self-training`: the few-data additive model, then the next leads after the training window (as many as
  it holds: leads whose outcome is not known yet) added with soft labels (weight p / 1-p), refitted;
* `unlabelled vocabulary`: the preprocessing (one-hot pooling, spline knots) fitted on the training and
  those unlabelled leads, the classifier on the labelled ones only.

`--wrong-prior`: the product's prior is fitted on the synthetic leads with their outcomes flipped (a prior that
is as wrong as it can be, standing in for a team whose funnel differs from X Education's), to measure what a
wrong prior costs and whether the asset's out-of-fold competition with the prior-free stumps protects it.

Prints one table; writes nothing. Single-threaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from learning_curve import earliest_with, ordered_leads, with_split
from rich.console import Console
from rich.table import Table
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from lead_scoring.contract import LABEL
from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.settings import project_root
from lead_scoring.training import additive
from lead_scoring.training.evaluation import classification_metrics
from lead_scoring.training.fitting import (
    FEW_DATA_PARAMS,
    FitSettings,
    calibrated_enough,
    is_few_data,
    select_candidate,
    train_candidate,
)
from lead_scoring.training.model import (
    FAMILIES,
    ModelParams,
    build_pipeline,
    features_frame,
    fit,
    model_logit,
    probability,
)

ROOT = project_root()
DEV_START, OTHER = 2500, (500, 2500)
Logits = Callable[[pd.DataFrame], np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    def loss(ab: np.ndarray) -> float:
        z = ab[0] * logits + ab[1]
        return float(np.sum(np.logaddexp(0, z) - y * z))

    return tuple(minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B").x)  # type: ignore[return-value]


def calibrated(fit_logits: Callable[[pd.DataFrame, np.ndarray], Logits], train: pd.DataFrame) -> Logits:
    """Fit on all training leads; Platt on 5-fold out-of-fold log-odds, kept when it lowers the cross-fitted ECE."""
    y = train[LABEL].astype(int).to_numpy()
    oof = np.empty(len(y))
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    for a, b in splits:
        oof[b] = fit_logits(train.iloc[a], y[a])(train.iloc[b])
    cross = np.empty(len(y))
    for a, b in splits:
        s, c = platt(oof[a], y[a])
        cross[b] = sigmoid(s * oof[b] + c)
    s, c = platt(oof, y)
    model = fit_logits(train, y)
    if s > 0 and classification_metrics(y, cross)["ece"] < classification_metrics(y, sigmoid(oof))["ece"]:
        return lambda frame: s * model(frame) + c
    return model


def additive_logits(params: ModelParams) -> Callable[[pd.DataFrame, np.ndarray], Logits]:
    def fit_logits(train: pd.DataFrame, y: np.ndarray) -> Logits:
        model = fit(build_pipeline(params), features_frame(train), y)
        return lambda frame: model_logit(model, features_frame(frame))

    return fit_logits


def offset_logits(
    prior: Logits, params: ModelParams, c: float, learn_weight: bool, context: pd.DataFrame | None = None
) -> Callable[[pd.DataFrame, np.ndarray], Logits]:
    """Logistic regression on the additive model's design with the prior's log-odds as offset: the L2 penalty
    (1/2c) pulls the local terms toward 0, i.e. the model toward the prior. `learn_weight`: the offset's
    weight is an unpenalised parameter instead of 1."""

    def fit_logits(train: pd.DataFrame, y: np.ndarray) -> Logits:
        pre = clone(build_pipeline(params).named_steps["preprocess"])
        pre.fit(features_frame(train if context is None else pd.concat([train, context])))
        x = np.asarray(pre.transform(features_frame(train)), dtype=float)
        mean = x.mean(axis=0)
        x = x - mean
        o = prior(train)
        k = x.shape[1]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b, a = theta[:k], theta[k], theta[k + 1] if learn_weight else 1.0
            z = x @ w + b + a * o
            p = sigmoid(z)
            value = float(np.sum(np.logaddexp(0, z) - y * z) + w @ w / (2 * c))
            r = p - y
            grad = np.concatenate([x.T @ r + w / c, [r.sum()], [r @ o] if learn_weight else []])
            return value, grad

        theta = minimize(loss, np.zeros(k + 1 + int(learn_weight)), jac=True, method="L-BFGS-B").x
        w, b, a = theta[:k], theta[k], theta[k + 1] if learn_weight else 1.0

        def logits(frame: pd.DataFrame) -> np.ndarray:
            z = np.asarray(pre.transform(features_frame(frame)), dtype=float) - mean
            return z @ w + b + a * prior(frame)

        return logits

    return fit_logits


def prior_model(frame: pd.DataFrame) -> Logits:
    model = fit(build_pipeline(ModelParams()), features_frame(frame), frame[LABEL].astype(bool))
    return lambda f: model_logit(model, features_frame(f))


def self_trained(params: ModelParams, unlabelled: pd.DataFrame) -> Callable[[pd.DataFrame, np.ndarray], Logits]:
    def fit_logits(train: pd.DataFrame, y: np.ndarray) -> Logits:
        first = fit(build_pipeline(params), features_frame(train), y)
        p = probability(first, features_frame(unlabelled))
        x = pd.concat([features_frame(train), features_frame(unlabelled), features_frame(unlabelled)])
        yy = np.concatenate([y, np.ones(len(p), int), np.zeros(len(p), int)])
        w = np.concatenate([np.ones(len(y)), p, 1 - p])
        model = build_pipeline(params)
        model.fit(x, yy, classifier__sample_weight=w)
        return lambda frame: np.asarray(model.decision_function(features_frame(frame)), dtype=float)

    return fit_logits


def shipped(train: pd.DataFrame) -> Logits:
    frame = with_split(train)
    settings = FitSettings()
    few, _ = is_few_data(frame, settings)
    candidates = [train_candidate(f, ModelParams(family=f), frame, few, settings)[0] for f in FAMILIES]
    chosen = select_candidate(candidates, 0.002, lambda c: calibrated_enough(c, few, settings))
    return lambda f: model_logit(chosen.pipeline, features_frame(f))


def variants(
    train: pd.DataFrame, pool: pd.DataFrame, synthetic: Callable[[], Logits], pooled: Callable[[], Logits]
) -> dict[str, Callable[[], Logits]]:
    """Name -> fit (lazily: `--only` fits just the variants it names)."""
    few = dataclasses.replace(ModelParams(), **{**FEW_DATA_PARAMS["additive"], "prior": ""})
    fine = dataclasses.replace(few, min_category_frequency=1)  # with a prior, rare categories need no pooling
    unlabelled = pool.iloc[len(train) : 2 * len(train)]
    out: dict[str, Callable[[], Logits]] = {"shipped (asset pick)": lambda: shipped(train)}
    for name, make in (("synthetic prior", synthetic), ("pooled prior", pooled)):
        out[f"{name} alone, Platt"] = lambda make=make: calibrated(lambda t, y: make(), train)
        for c in (0.03, 0.1, 0.3, 1.0):
            for label, learn in (("offset", False), ("learned weight", True)):
                out[f"{name} {label}, C {c}"] = lambda make=make, c=c, learn=learn: calibrated(
                    offset_logits(make(), fine, c, learn), train
                )
    for c in (0.1, 0.3, 1.0, 3.0):  # the product's form: one basis, prior coefficients as the L2 mean
        params = dataclasses.replace(few, prior="synthetic", prior_c=c)
        out[f"product: additive few-data toward synthetic prior, C {c}"] = lambda params=params: calibrated(
            additive_logits(params), train
        )
    out["self-training (next leads, soft labels)"] = lambda: calibrated(self_trained(few, unlabelled), train)
    out["unlabelled vocabulary, C 0.3"] = lambda: calibrated(
        offset_logits(lambda f: np.zeros(len(f)), few, 0.3, False, context=unlabelled), train
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "x_education_leads_dev.csv"))
    parser.add_argument("--mapping", default=str(ROOT / "data" / "mappings" / "x_education.yaml"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 120])
    parser.add_argument("--stage", choices=("dev", "test"), default="dev")
    parser.add_argument("--synthetic-leads", type=int, default=20000)
    parser.add_argument("--only", default="", help="fit only the variants whose name contains this")
    parser.add_argument("--wrong-prior", action="store_true", help="the product's prior with flipped outcomes")
    args = parser.parse_args()
    console = Console(width=200)
    if not Path(args.csv).exists():
        console.print(f"[yellow]skipped:[/yellow] {args.csv} not found (pass --csv)")
        return 0
    warnings.filterwarnings("ignore")
    threadpool_limits(limits=1)
    if args.wrong_prior:  # benchmark-only substitution of the product's prior (see the module docstring)
        right = additive.prior_leads
        additive.prior_leads = lambda name: (lambda x, y: (x, 1 - y))(*right(name))
    leads = ordered_leads(args.csv, args.mapping)
    n_test = int(round(len(leads) * 0.3))
    pool, test = leads.iloc[:-n_test], leads.iloc[-n_test:]
    dev = pool.iloc[DEV_START:]
    judged = dev if args.stage == "dev" else test
    y = judged[LABEL].astype(int).to_numpy()
    synthetic_leads = generate_leads(args.synthetic_leads, seed=101)
    synthetic = lru_cache(1)(lambda: prior_model(synthetic_leads[synthetic_leads[LABEL].notna()]))
    pooled = lru_cache(1)(lambda: prior_model(pool.iloc[OTHER[0] : OTHER[1]]))
    table = Table(title=f"Few-data trials on the {args.stage} leads ({len(judged):,}, {y.mean():.1%} converted)")
    for column in ("conversions (leads)", "variant", "ROC AUC", "ECE", "Brier"):
        table.add_column(column)
    for size in args.sizes:
        train = earliest_with(pool, size)
        for name, make in variants(train, pool, synthetic, pooled).items():
            if args.only not in name:
                continue
            logits = make()
            m = classification_metrics(y, sigmoid(logits(judged)))
            table.add_row(
                f"{size} ({len(train)})", name, f"{m['roc_auc']:.3f}", f"{m['ece']:.3f}", f"{m['brier_score']:.3f}"
            )
            console.print(f"{size}\t{name}\t{m['roc_auc']:.3f}\t{m['ece']:.3f}\t{m['brier_score']:.3f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
