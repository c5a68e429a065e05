"""Load a CRM export (CSV) into contract records through a YAML column mapping."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from lead_scoring.contract import FIELD_NAMES, FIELDS_BY_NAME, FieldType, validate_record


class MappingError(ValueError):
    """The mapping file is malformed or names a field the contract does not have."""


@dataclass(frozen=True)
class ExportMapping:
    name: str
    columns: dict[str, str]
    object_type: str | None = None
    null_values: tuple[str, ...] = ("",)
    true_values: tuple[str, ...] = ("Yes", "true", "True", "1")
    false_values: tuple[str, ...] = ("No", "false", "False", "0")
    drop: tuple[str, ...] = ()
    timestamps: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> ExportMapping:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise MappingError(f"mapping file {path} does not exist") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
            raise MappingError(f"{path}: expected a mapping with a 'columns' section")
        unknown = sorted(set(raw["columns"].values()) - set(FIELD_NAMES))
        if unknown:
            raise MappingError(f"{path}: columns map to fields not in the contract: {', '.join(unknown)}")
        return cls(
            name=str(raw.get("name", Path(path).stem)),
            columns={str(k): str(v) for k, v in raw["columns"].items()},
            object_type=raw.get("object_type"),
            null_values=tuple(str(v) for v in raw.get("null_values", [""])),
            true_values=tuple(str(v) for v in raw.get("true_values", cls.true_values)),
            false_values=tuple(str(v) for v in raw.get("false_values", cls.false_values)),
            drop=tuple(raw.get("drop", ())),
            timestamps=dict(raw.get("timestamps", {})),
        )


@dataclass
class ImportResult:
    records: pd.DataFrame  # valid records, contract columns
    rejected: pd.DataFrame  # Id, payload (JSON of the mapped row), reason

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": len(self.records) + len(self.rejected),
            "valid": len(self.records),
            "rejected": len(self.rejected),
        }


def _convert(value: Any, ftype: FieldType, mapping: ExportMapping) -> Any:
    """Cast one export cell to the contract type; an uncastable value is kept as-is for the validator."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if text in mapping.null_values:
        return None
    if ftype is FieldType.BOOLEAN:
        if text in mapping.true_values:
            return True
        if text in mapping.false_values:
            return False
        return text
    if ftype in (FieldType.NUMBER, FieldType.INT):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def map_export(frame: pd.DataFrame, mapping: ExportMapping) -> list[dict[str, Any]]:
    """Rows of an export as contract-shaped dicts (not yet validated)."""
    missing = sorted(set(mapping.columns) - set(frame.columns))
    if missing:
        raise MappingError(f"export lacks mapped columns: {', '.join(missing)}")
    ts = mapping.timestamps
    rng = np.random.default_rng(int(ts.get("seed", 0)))
    end = pd.Timestamp(ts.get("end", datetime.now(UTC).isoformat()))
    spread_ms = int(float(ts.get("spread_days", 365)) * 86_400_000)
    offsets = rng.integers(0, max(spread_ms, 1), size=len(frame))
    records = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        record: dict[str, Any] = {}
        for column, field_name in mapping.columns.items():
            record[field_name] = _convert(row.get(column), FIELDS_BY_NAME[field_name].type, mapping)
        if mapping.object_type and record.get("_ObjectType") is None:
            record["_ObjectType"] = mapping.object_type
        record.setdefault("_EventType", "created")
        if record.get("CreatedDate") is None and record.get("LastModifiedDate") is None:
            created = (end - pd.Timedelta(milliseconds=int(offsets[i]))).tz_convert("UTC")
            stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            record["CreatedDate"] = stamp
            record["LastModifiedDate"] = stamp
        records.append(record)
    return records


def import_export(path: str | Path, mapping: ExportMapping) -> ImportResult:
    """Read a CSV export, map and validate every row: valid records and rejected ones with reasons."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    valid, rejected = [], []
    for record in map_export(frame, mapping):
        errors = validate_record(record)
        if errors:
            rejected.append(
                {
                    "Id": record.get("Id") if isinstance(record.get("Id"), str) else None,
                    "payload": json.dumps(record, default=str),
                    "reason": "; ".join(str(e) for e in errors),
                }
            )
        else:
            valid.append(record)
    records = pd.DataFrame.from_records(valid, columns=list(FIELD_NAMES))
    return ImportResult(
        records=records, rejected=pd.DataFrame.from_records(rejected, columns=["Id", "payload", "reason"])
    )


def validate_frame(frame: pd.DataFrame) -> ImportResult:
    """Split a frame of contract-shaped rows (e.g. the shipped sample) into valid and rejected."""
    valid, rejected = [], []
    for record in frame.to_dict(orient="records"):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        errors = validate_record(clean)
        if errors:
            rejected.append(
                {
                    "Id": clean.get("Id") if isinstance(clean.get("Id"), str) else None,
                    "payload": json.dumps(clean, default=str),
                    "reason": "; ".join(str(e) for e in errors),
                }
            )
        else:
            valid.append(clean)
    return ImportResult(
        records=pd.DataFrame.from_records(valid, columns=list(FIELD_NAMES)),
        rejected=pd.DataFrame.from_records(rejected, columns=["Id", "payload", "reason"]),
    )
