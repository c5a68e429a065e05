"""The lead record contract: one definition of the fields, the validator, and the derived schemas."""

from lead_scoring.contract.fields import (
    CATEGORICAL_FEATURES,
    FEATURES,
    FIELD_NAMES,
    FIELDS_BY_NAME,
    FLAG_FEATURES,
    FORBIDDEN_FEATURES,
    LABEL,
    LEAD_FIELDS,
    LEAKAGE_FIELDS,
    LEDGER_COLUMNS,
    NUMERIC_FEATURES,
    OBJECT_TYPES,
    PII_FIELDS,
    REQUIRED_FIELDS,
    RESCORE_EVENT,
    SCORE_FIELDS,
    SCORE_GRADES,
    FieldType,
    LeadField,
    Role,
)
from lead_scoring.contract.validation import (
    FieldError,
    RecordValidationError,
    normalize_record,
    parse_record,
    parse_record_strict,
    parse_timestamp,
    validate_record,
)

__all__ = [
    "CATEGORICAL_FEATURES", "FEATURES", "FIELD_NAMES", "FIELDS_BY_NAME", "FLAG_FEATURES",
    "FORBIDDEN_FEATURES", "LABEL", "LEAD_FIELDS", "LEAKAGE_FIELDS", "LEDGER_COLUMNS", "NUMERIC_FEATURES",
    "OBJECT_TYPES", "PII_FIELDS", "REQUIRED_FIELDS", "RESCORE_EVENT", "SCORE_FIELDS", "SCORE_GRADES",
    "FieldType", "LeadField", "Role", "FieldError", "RecordValidationError",
    "normalize_record", "parse_record", "parse_record_strict", "parse_timestamp", "validate_record",
]
