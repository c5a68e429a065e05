"""`features_hash`: a stable fingerprint of the feature values a model scored (contract section 2b).

sha256 of the canonical JSON of the record's model features (the contract's `FEATURES`: never PII, never
the label, never a leakage field), keys sorted, numbers as floats, missing values as null; the first
`FEATURES_HASH_LENGTH` hex digits. Two scores with the same hash saw the same inputs, whichever model
version produced them (the champion/challenger comparison and the ledger use it to tell a changed lead from
a re-score of an unchanged one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from lead_scoring.contract.fields import FEATURES, NUMERIC_FEATURES

FEATURES_HASH_LENGTH = 16  # 64 bits: collisions among a CRM's leads are not a concern
_NUMERIC = frozenset(NUMERIC_FEATURES)


def canonical_features(record: Mapping[str, Any]) -> dict[str, Any]:
    """The feature values of `record` as the hash sees them (numbers as floats, absent as None)."""
    out: dict[str, Any] = {}
    for name in FEATURES:
        value = record.get(name)
        if name in _NUMERIC and value is not None and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


def features_hash(record: Mapping[str, Any]) -> str:
    """Hex prefix of sha256 over the canonical JSON of the record's feature values."""
    payload = orjson.dumps(canonical_features(record), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()[:FEATURES_HASH_LENGTH]
