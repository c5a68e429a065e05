"""Property tests of the contract validator (hypothesis)."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lead_scoring.contract import (
    FIELDS_BY_NAME,
    LEAD_FIELDS,
    REQUIRED_FIELDS,
    FieldType,
    normalize_record,
    parse_record,
    validate_record,
)

_text = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
_timestamps = st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)).map(
    lambda d: d.isoformat().replace("+00:00", "Z")
)


def _value(field):
    if field.allowed:
        return st.sampled_from(field.allowed)
    kind = field.type
    if kind is FieldType.STRING:
        return _text
    if kind is FieldType.BOOLEAN:
        return st.booleans()
    if kind in (FieldType.NUMBER, FieldType.INT):
        low = 0 if field.non_negative else -1e9
        return st.one_of(
            st.integers(min_value=int(low), max_value=10**9), st.floats(min_value=low, max_value=1e9, allow_nan=False)
        )
    return _timestamps


@st.composite
def valid_records(draw):
    record = {}
    for field in LEAD_FIELDS:
        if field.required or draw(st.booleans()):
            record[field.name] = draw(_value(field)) if field.required or draw(st.integers(0, 4)) else None
    if draw(st.booleans()):
        record["SomeUnknownExtra__c"] = draw(st.text(max_size=5))  # unknown extras are allowed
    return record


_wrong_values = {
    FieldType.STRING: st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2)),
    FieldType.BOOLEAN: st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False)),
    FieldType.NUMBER: st.one_of(
        st.text(max_size=5), st.booleans(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)
    ),
    FieldType.INT: st.one_of(st.text(max_size=5), st.booleans()),
    FieldType.TIMESTAMP: st.one_of(
        st.integers(), st.text(alphabet="abcxyz ", max_size=8), st.just("2024-13-45T99:99:00Z")
    ),
}


@given(valid_records())
def test_valid_records_pass_and_normalize(record):
    assert validate_record(record) == []
    clean = normalize_record(record)
    assert set(clean) == set(FIELDS_BY_NAME)  # extras dropped, every contract field present
    assert clean["_EventType"] in ("created", "updated", "deleted", "rescore")


@given(valid_records(), st.data())
def test_a_wrong_type_is_reported_with_its_field(record, data):
    field = data.draw(st.sampled_from(LEAD_FIELDS))
    bad = data.draw(_wrong_values[field.type])
    record[field.name] = bad
    errors = validate_record(record)
    assert [e.field for e in errors] == [field.name], errors
    assert errors[0].reason


@given(valid_records(), st.sampled_from(REQUIRED_FIELDS))
def test_missing_required_field_is_named(record, name):
    del record[name]
    errors = validate_record(record)
    assert [(e.field, e.reason) for e in errors] == [(name, "required field is missing")]


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
@settings(max_examples=300)
def test_arbitrary_payloads_never_raise(payload):
    record, errors = parse_record(payload)
    assert (record is None) == bool(errors)
    for error in errors:
        assert error.field and error.reason


@given(valid_records())
def test_json_round_trip_is_accepted(record):
    parsed, errors = parse_record(json.dumps(record).encode())
    assert errors == []
    assert parsed["Id"] == record["Id"]


def test_specific_reasons_are_readable():
    _, errors = parse_record(
        b'{"Id": "x", "_ObjectType": "Account", "LastModifiedDate": "yesterday", "Total_Visits__c": -1}'
    )
    reasons = {e.field: e.reason for e in errors}
    assert reasons["_ObjectType"].startswith("must be one of Lead, Contact")
    assert "ISO-8601" in reasons["LastModifiedDate"]
    assert reasons["Total_Visits__c"] == "must be >= 0, got -1"
    _, errors = parse_record(b"{not json")
    assert errors[0].field == "$" and "not valid JSON" in errors[0].reason
    _, errors = parse_record(b"[1, 2]")
    assert errors[0].reason == "expected a JSON object, got array"
