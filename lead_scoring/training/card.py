"""The model card: what a sales director asks before trusting a score, for one model version.

`card_section` gathers, at training time, what only the training run knows (data window and size,
conversions, few-data mode, features and the fields left out by the leakage guard, metrics with 90%
bootstrap intervals, the calibration curve, grade cut-offs with their conversion rates, metrics per
segment); it is kept in the model manifest under `card`. `render_card` turns a manifest (and the
champion's, for "what changed") into markdown: the `model_card` asset shows it in the Dagster UI and
`lead-scoring model card VERSION` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lead_scoring.contract import FEATURES, FORBIDDEN_FEATURES, LABEL
from lead_scoring.training.evaluation import calibration_table, expected_calibration_error

SEGMENT_FIELDS = ("LeadSource", "Lead_Origin__c", "Country")
MIN_SEGMENT_LEADS = 30  # fewer leads say nothing about a segment's metrics
# A segment value the training leads hold fewer times than this cannot have been learned: at 40 conversions the
# 115 earliest X Education leads hold 1 Lead Add Form lead, and the later ones (9% of them, 97% converted) were
# scored like an average lead (benchmarks/learning_curve.py, `coverage`) until few-data mode fitted toward a prior.
MIN_SUPPORT_LEADS = 5
PRIOR_WORDING = {
    "synthetic": "a model of the project's synthetic leads (lead_scoring/training/prior.py), whose effects were set "
    "by hand from public analyses of an online-course lead funnel (X Education)",
}


def thin_segments(training_data: pd.DataFrame, min_leads: int = MIN_SUPPORT_LEADS) -> dict[str, dict[str, int]]:
    """Per segment field, the values the training leads hold fewer than `min_leads` times, with their count."""
    out: dict[str, dict[str, int]] = {}
    for name in SEGMENT_FIELDS:
        values = training_data[name].astype(object).where(training_data[name].notna(), "(missing)").astype(str)
        counts = values.value_counts()
        out[name] = {str(value): int(n) for value, n in sorted(counts.items()) if n < min_leads}
    return out


def segment_metrics(
    evaluation: pd.DataFrame, proba: np.ndarray, min_leads: int = MIN_SEGMENT_LEADS
) -> dict[str, list[dict[str, Any]]]:
    """Per segment field, each value with at least `min_leads` evaluation leads: leads, conversion rate,
    mean predicted probability, ROC AUC (when both outcomes occur) and ECE."""
    y = evaluation[LABEL].astype(bool).astype(int).to_numpy()
    proba = np.asarray(proba, dtype=float)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SEGMENT_FIELDS:
        values = evaluation[name].astype(object).where(evaluation[name].notna(), "(missing)").astype(str).to_numpy()
        rows = []
        for value in pd.unique(values):
            inside = values == value
            n = int(inside.sum())
            if n < min_leads:
                continue
            ys, ps = y[inside], proba[inside]
            rows.append(
                {
                    "value": str(value),
                    "leads": n,
                    "conversion_rate": float(ys.mean()),
                    "mean_predicted": float(ps.mean()),
                    "roc_auc": float(roc_auc_score(ys, ps)) if 0 < ys.sum() < n else None,
                    "ece": expected_calibration_error(ys, ps),
                }
            )
        out[name] = sorted(rows, key=lambda r: -r["leads"])
    return out


def card_section(
    *,
    evaluation: pd.DataFrame,
    proba: np.ndarray,
    training_data: pd.DataFrame,
    few_data: bool,
    few_data_reason: str,
    evaluated_on: str,
    metrics: Mapping[str, float],
    intervals: Mapping[str, list[float]],
    calibration: Mapping[str, Any],
    prior: str = "",
) -> dict[str, Any]:
    """The manifest's `card` section (JSON-ready); `prior`: the prior the model was fitted toward ("" none)."""
    y = training_data[LABEL].astype(bool)
    created = pd.to_datetime(training_data["CreatedDate"], utc=True)
    return {
        "data": {
            "from": str(created.min()),
            "to": str(created.max()),
            "leads": int(len(training_data)),
            "conversions": int(y.sum()),
            "train_leads": int((training_data["split"] == "train").sum()),
            "validation_leads": int((training_data["split"] == "validation").sum()),
        },
        "few_data_mode": few_data,
        "mode_reason": few_data_reason,
        "prior": prior,
        "evaluated_on": evaluated_on,
        "features": list(FEATURES),
        "left_out": sorted(FORBIDDEN_FEATURES),
        "metrics": {k: float(metrics[k]) for k in ("roc_auc", "ece", "brier_score", "pr_auc", "log_loss")},
        "intervals": {k: [float(v) for v in vs] for k, vs in intervals.items()},
        "calibration": dict(calibration),
        "calibration_curve": calibration_table(evaluation[LABEL].astype(int).to_numpy(), proba),
        "segments": segment_metrics(evaluation, proba),
        "thin_segments": thin_segments(training_data),
    }


def champion_for(version: str, pointer: Mapping[str, Any] | None) -> str | None:
    """The champion a version is compared with: the one it replaced if it is production, else production."""
    if not pointer:
        return None
    if pointer.get("version") == version:
        return pointer.get("previous") or None
    return str(pointer["version"])


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.0%}"


def _changes(manifest: Mapping[str, Any], champion: Mapping[str, Any] | None) -> list[str]:
    if champion is None:
        return ["- no champion to compare with (first model)"]
    card, other = manifest.get("card") or {}, champion.get("card") or {}
    lines = [f"champion: **{champion.get('version')}**", "", "| | champion | this version |", "|---|---|---|"]
    rows = [
        ("family", champion.get("family"), manifest.get("family")),
        (
            "conversions trained on",
            (other.get("data") or {}).get("conversions", "n/a"),
            (card.get("data") or {}).get("conversions", "n/a"),
        ),
        ("few-data mode", other.get("few_data_mode", "n/a"), card.get("few_data_mode", "n/a")),
        (
            "calibrated",
            (other.get("calibration") or {}).get("applied", "n/a"),
            (card.get("calibration") or {}).get("applied", "n/a"),
        ),
    ]
    for key in ("roc_auc", "ece", "brier_score"):
        rows.append(
            (key, _num((champion.get("metrics") or {}).get(key)), _num((manifest.get("metrics") or {}).get(key)))
        )
    rows.append(
        (
            "grade cut-offs",
            ((champion.get("grades") or {}).get("min_score")),
            ((manifest.get("grades") or {}).get("min_score")),
        )
    )
    lines += [f"| {name} | {a} | {b} |" for name, a, b in rows]
    added = sorted(set(manifest.get("features") or []) - set(champion.get("features") or []))
    removed = sorted(set(champion.get("features") or []) - set(manifest.get("features") or []))
    if added or removed:
        lines.append(f"\nfeatures added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}")
    return lines


def render_card(manifest: Mapping[str, Any], champion: Mapping[str, Any] | None = None) -> str:
    """The model card of a manifest as markdown (models trained before cards show what their manifest has)."""
    card = manifest.get("card") or {}
    data = card.get("data") or {}
    metrics, intervals = manifest.get("metrics") or {}, card.get("intervals") or {}
    out = [f"# Model card: {manifest.get('version')}", ""]
    if not card:
        out += ["_This version was trained before model cards: only its manifest's metrics are shown._", ""]
    if card.get("few_data_mode"):
        out += [
            f"> **Few-data mode: trained on {data.get('conversions')} conversions** ({data.get('leads')} leads). "
            f"Every metric below is measured out of fold and carries a 90% interval: read the interval, "
            f"not the point. ({card.get('mode_reason')})",
            "",
        ]
    out += [
        "## Data",
        f"- window: {data.get('from', 'n/a')} to {data.get('to', 'n/a')}",
        f"- leads: {data.get('leads', 'n/a')} ({data.get('train_leads', 'n/a')} train, "
        f"{data.get('validation_leads', 'n/a')} validation), conversions: {data.get('conversions', 'n/a')}",
        f"- measured on: {card.get('evaluated_on', 'validation leads')}",
        f"- model family: {manifest.get('family', 'n/a')}; hyperparameters: {manifest.get('params', {})}",
        "",
    ]
    used = manifest.get("features") or []
    out += [
        "## Features",
        f"- used ({len(used)}): {', '.join(used)}",
        f"- left out by the leakage guard (filled in after contact, PII or the label): "
        f"{', '.join(card.get('left_out') or []) or 'n/a'}",
        "",
    ]
    out += ["## Metrics", "| metric | value | 90% bootstrap interval |", "|---|---|---|"]
    for key, label in (
        ("roc_auc", "ROC AUC"),
        ("ece", "expected calibration error (10 bins)"),
        ("brier_score", "Brier score"),
        ("pr_auc", "PR AUC"),
        ("log_loss", "log loss"),
    ):
        low_high = intervals.get(key)
        out.append(
            f"| {label} | {_num(metrics.get(key))} | "
            f"{_num(low_high[0]) + '-' + _num(low_high[1]) if low_high else 'n/a'} |"
        )
    calibration = card.get("calibration") or {}
    out += [
        "",
        "## Calibration",
        f"- {calibration.get('method', 'n/a')}: {'applied' if calibration.get('applied') else 'not applied'} "
        f"(ECE uncalibrated {_num(calibration.get('ece_uncalibrated'))}, calibrated "
        f"{_num(calibration.get('ece_calibrated'))}, fitted on {calibration.get('fitted_on', 'n/a')})",
        "",
    ]
    curve = card.get("calibration_curve") or []
    if curve:
        out += ["| predicted | leads | mean predicted | observed conversion |", "|---|---|---|---|"]
        out += [f"| {r['bin']} | {r['leads']} | {_pct(r['predicted'])} | {_pct(r['observed'])} |" for r in curve]
    grades = manifest.get("grades") or {}
    out += ["", "## Grades"]
    if grades:
        out += [
            f"cut-offs on Lead_Score__c: {grades.get('min_score')} ({grades.get('bands', 4)} bands)",
            "",
            "| grade | score | leads | conversion | 90% interval |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {b['grade']} | {b['min_score']}-{b['max_score']} | {b['leads']} | {_pct(b['conversion_rate'])} | "
            f"{_pct(b.get('conversion_low'))}-{_pct(b.get('conversion_high'))} |"
            for b in grades.get("validation", [])
            if b.get("leads")
        ]
    else:
        out.append("no grades")
    out += ["", f"## Segments (values with at least {MIN_SEGMENT_LEADS} evaluation leads)"]
    for name, rows in (card.get("segments") or {}).items():
        out += [
            "",
            f"**{name}**",
            "",
            "| value | leads | conversion | mean predicted | ROC AUC | ECE |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['value']} | {r['leads']} | {_pct(r['conversion_rate'])} | {_pct(r['mean_predicted'])} | "
            f"{_num(r['roc_auc'])} | {_num(r['ece'])} |"
            for r in rows
        ] or ["| (none large enough) | | | | | |"]
    thin = card.get("thin_segments")
    if thin is not None:
        reading = (
            "rests on the prior's value for that field, not on leads of this team"
            if card.get("prior")
            else "reads them as an average lead of that field"
        )
        out += [
            "",
            "## Where the model has little data",
            f"Values seen fewer than {MIN_SUPPORT_LEADS} times among the {data.get('leads', 'n/a')} training leads "
            "(and any value never seen): the model cannot have learned from these leads how they convert, so their "
            f"score {reading}. Check such leads by hand.",
            "",
        ]
        out += [
            f"- {name}: " + (", ".join(f"{value} ({n})" for value, n in values.items()) or "none")
            for name, values in thin.items()
        ]
    out += ["", "## What changed against the champion", *_changes(manifest, champion)]
    return "\n".join(out) + "\n"


def model_card_markdown(repo: Any, version: str) -> tuple[str, str | None]:
    """(the card of `version` in a model repository, the champion it is compared with): the asset's and the CLI's."""
    manifest = repo.manifest(version)
    champion = champion_for(version, repo.production_pointer())
    champion_manifest = repo.manifest(champion) if champion and champion != version else None
    return render_card(manifest, champion_manifest), champion
