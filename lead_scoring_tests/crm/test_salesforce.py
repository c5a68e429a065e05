"""Salesforce writeback (Bulk API 2.0) against a fake Salesforce HTTP API: exact payloads, auth, limits."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from lead_scoring.crm.batches import Message
from lead_scoring.crm.definitions import crm as crm_resource
from lead_scoring.crm.salesforce import SalesforceResource, TransientSalesforceError, to_csv
from lead_scoring.crm.writeback import WritebackHandler
from lead_scoring.settings import Profile
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.crm.fake_salesforce import SESSION_ID, FakeSalesforce

USER, PASSWORD, TOKEN = "integration@acme.example", "s3cr3t-Pa55", "TOKEN123xyz"


def _score(i: int, object_type: str = "Lead", score: int | None = None, reasons: str | None = None) -> dict:
    prefix = "00Q" if object_type == "Lead" else "003"
    return {
        "Id": f"{prefix}{i:012d}",
        "_ObjectType": object_type,
        "_EventType": "updated",
        "Lead_Score__c": (i * 7) % 101 if score is None else score,
        "Lead_Score_Reasons__c": reasons if reasons is not None else f"+Lead Add Form; -Email Bounced {i}",
        "Lead_Score_Model__c": "v20261123-1",
        "Lead_Grade__c": "ABCD"[i % 4] if i % 5 else None,
        "features_hash": f"{i:016x}",
        "source_ts": 1_763_900_000_000 + i,
        "scored_ts": 1_763_900_000_500 + i,
    }


def _msg(record: dict, offset: int, topic: str = "lead_scores") -> Message:
    return Message(topic, 0, offset, record["Id"].encode(), json.dumps(record).encode(), 0)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _resource(fake: FakeSalesforce, sleeps: list[float], **overrides) -> SalesforceResource:
    res = SalesforceResource(
        username=USER,
        password=PASSWORD,
        security_token=TOKEN,
        poll_interval_s=0.25,
        backoff_s=2.0,
        max_backoff_s=30.0,
        **overrides,
    )
    return res.with_session_factory(fake.session, sleep=sleeps.append)


def _parsed(records: list[dict]) -> list[dict]:
    from lead_scoring.crm.writeback import parse_score

    out = []
    for r in records:
        rec, reason = parse_score(json.dumps(r).encode())
        assert reason is None, reason
        out.append(rec)
    return out


def test_bulk_jobs_carry_the_exact_csv_in_batches_of_at_most_200_with_the_session_token(sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    leads = [_score(i) for i in range(450)]
    contacts = [_score(i, "Contact") for i in range(3)]
    leads[0]["Lead_Score_Reasons__c"] = '+Referral, "word of mouth"; -Unreachable'  # CSV quoting
    fake = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids={r["Id"] for r in leads + contacts})
    writer = _resource(fake, sleeps).writer()

    failures = writer.write(_parsed(leads + contacts))

    assert failures == []
    assert fake.logins == 1
    # One job per object and chunk: 200 + 200 + 50 Leads, then 3 Contacts; each created, filled, closed, polled.
    assert [(j["object"], j["records"], j["state"]) for j in writer.jobs] == [
        ("Lead", 200, "JobComplete"),
        ("Lead", 200, "JobComplete"),
        ("Lead", 50, "JobComplete"),
        ("Contact", 3, "JobComplete"),
    ]
    creates = [c for c in fake.data_calls() if c.method == "POST"]
    assert [json.loads(c.body) for c in creates][0] == {
        "object": "Lead",
        "operation": "update",
        "contentType": "CSV",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    }
    assert creates[0].url == "https://acme.my.salesforce.com/services/data/v62.0/jobs/ingest"
    uploads = fake.uploads()
    assert [len(u.body.decode().splitlines()) - 1 for u in uploads] == [200, 200, 50, 3]
    first = uploads[0].body.decode().split("\n")
    # the grade goes with the score (#N/A clears it when the model gave none); features_hash never goes
    assert first[0] == "Id,Lead_Score__c,Lead_Score_Reasons__c,Lead_Score_Model__c,Lead_Grade__c"
    assert first[1] == '00Q000000000000,0,"+Referral, ""word of mouth""; -Unreachable",v20261123-1,#N/A'
    assert first[2] == "00Q000000000001,7,+Lead Add Form; -Email Bounced 1,v20261123-1,B"
    assert uploads[0].headers["Content-Type"] == "text/csv"
    assert uploads[3].body.decode().split("\n")[1].startswith("003000000000000,0,")
    # Every data call carries the session from the SOAP login; the login carried password + token.
    assert all(c.headers["Authorization"] == f"Bearer {SESSION_ID}" for c in fake.data_calls())
    login = fake.calls[0]
    assert login.url == "https://login.salesforce.com/services/Soap/u/62.0"
    assert f"<n1:password>{PASSWORD}{TOKEN}</n1:password>" in login.body.decode()
    closes = [json.loads(c.body) for c in fake.data_calls() if c.method == "PATCH"]
    assert closes == [{"state": "UploadComplete"}] * 4
    assert fake.records["00Q000000000449"]["Lead_Score__c"] == str((449 * 7) % 101)
    assert sleeps == [0.25] * 4  # one poll wait per job (the fake completes on the second poll)
    logged = caplog.text
    assert PASSWORD not in logged and TOKEN not in logged and SESSION_ID not in logged


def test_limit_errors_are_retried_with_exponential_backoff(sleeps):
    records = [_score(i) for i in range(5)]
    fake = FakeSalesforce(
        USER, PASSWORD, TOKEN, known_ids={r["Id"] for r in records}, limit_errors=3, polls_before_complete=0
    )
    writer = _resource(fake, sleeps).writer()

    assert writer.write(_parsed(records)) == []

    statuses = [c.method for c in fake.data_calls()]
    assert statuses[:3] == ["POST", "POST", "POST"]  # three refused job creations
    assert [round(s) for s in sleeps] == [2, 4, 8]  # backoff doubles (retry.backoff: plus a little jitter)
    assert len(fake.records) == 5
    assert len(writer.jobs) == 1


def test_limit_errors_beyond_the_attempts_raise_so_the_batch_is_not_committed(sleeps):
    records = [_score(i) for i in range(3)]
    fake = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids={r["Id"] for r in records}, limit_errors=100)
    writer = _resource(fake, sleeps, max_attempts=4).writer()
    with pytest.raises(TransientSalesforceError, match="REQUEST_LIMIT_EXCEEDED"):
        writer.write(_parsed(records))
    assert [round(s) for s in sleeps] == [2, 4, 8]
    assert fake.records == {}


def test_unknown_ids_and_bad_records_are_kept_with_the_reason_probes_never_sent(tmp_path, sleeps):
    good = [_score(i) for i in range(4)]
    unknown = _score(99)
    probe = {**_score(5), "Id": "PROBE-abc123"}
    bad = {**_score(6), "Lead_Score__c": 140}
    fake = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids={r["Id"] for r in good}, polls_before_complete=0)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    handler = WritebackHandler(_resource(fake, sleeps).writer(), warehouse)

    batch = [_msg(r, i) for i, r in enumerate([*good, unknown, probe, bad])]
    batch.append(Message("lead_scores", 0, 99, b"k", b"{not json", 0))
    counts = handler.handle(batch)

    assert counts == {"written": 4, "failed": 3, "probes_skipped": 1, "superseded": 0}
    assert set(fake.records) == {r["Id"] for r in good}
    assert not any(b"PROBE-" in c.body for c in fake.calls)
    errors = warehouse.query("SELECT Id, reason, target FROM crm_writeback_errors ORDER BY Id")
    by_id = dict(zip(errors["Id"], errors["reason"], strict=True))
    assert by_id[unknown["Id"]] == "salesforce: INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"
    assert "Lead_Score__c: expected an integer 0-100" in by_id[bad["Id"]]
    assert by_id["k"].startswith("bad score record: $: not valid JSON")
    assert set(errors["target"]) == {"salesforce"}


def test_a_field_salesforce_rejects_fails_the_records_with_its_reason(sleeps, monkeypatch):
    records = [_score(i) for i in range(3)]
    fake = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids={r["Id"] for r in records}, polls_before_complete=0)
    monkeypatch.setattr(
        "lead_scoring.crm.salesforce.WRITTEN_FIELDS",
        ("Lead_Score__c", "Lead_Score_Reasons__c", "Lead_Score_Model__c", "Not_A_Field__c"),
    )
    failures = _resource(fake, sleeps).writer().write(_parsed(records))
    assert [f.reason for f in failures] == ["bulk job Failed: InvalidBatch : Field name not found : Not_A_Field__c"] * 3


def test_wrong_credentials_fail_loudly_without_echoing_them(sleeps):
    fake = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids=set())
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    res = SalesforceResource(username=USER, password="wrong", security_token=TOKEN).with_session_factory(
        fake.session, sleep=sleeps.append
    )
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        res.writer().write(_parsed([_score(1)]))
    assert "wrong" not in str(info.value) and TOKEN not in str(info.value)
    assert fake.data_calls() == []


def test_to_csv_is_the_documented_header_and_empty_for_nulls():
    rec = {
        "Id": "00Q1",
        "Lead_Score__c": 55,
        "Lead_Score_Reasons__c": None,
        "Lead_Score_Model__c": "m",
        "Lead_Grade__c": "B",
    }
    header = "Id,Lead_Score__c,Lead_Score_Reasons__c,Lead_Score_Model__c,Lead_Grade__c\n"
    assert to_csv([rec]) == header + "00Q1,55,,m,B\n"
    # a model without grades clears the grade an earlier model wrote (#N/A = null in Bulk API 2.0)
    assert to_csv([{**rec, "Lead_Grade__c": None}]) == header + "00Q1,55,,m,#N/A\n"


def test_gcp_profile_reads_salesforce_secrets_from_the_environment_only():
    crm = crm_resource(Profile.GCP)
    assert isinstance(crm, SalesforceResource)
    assert pd.Series([crm.username, crm.password, crm.security_token]).tolist() == [
        "SALESFORCE_USERNAME",
        "SALESFORCE_PASSWORD",
        "SALESFORCE_SECURITY_TOKEN",
    ]  # EnvVar names, not values


def test_an_expired_session_logs_in_again_and_the_update_goes_through(sleeps):
    records = [_score(i) for i in range(3)]
    fake = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids={r["Id"] for r in records}, polls_before_complete=0)
    fake.expire_sessions = 1
    writer = _resource(fake, sleeps).writer()
    assert writer.write(_parsed(records)) == []
    assert fake.logins == 2 and len(fake.records) == 3
    assert sleeps == []  # a new login, not a backoff


def test_jwt_login_from_the_environment_writes_through_the_bulk_api(monkeypatch, sleeps):
    """Issue 12 #5: LEAD_SCORING_SALESFORCE_AUTH=jwt reads SALESFORCE_CONSUMER_KEY / SALESFORCE_PRIVATE_KEY; the
    assertion is signed with the key, addressed to login.salesforce.com, sent to the My Domain's token endpoint."""
    import dagster as dg
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for name, value in {
        "LEAD_SCORING_SALESFORCE_AUTH": "jwt",
        "LEAD_SCORING_SALESFORCE_INSTANCE_URL": "acme.my",
        "SALESFORCE_USERNAME": USER,
        "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer-key",
        "SALESFORCE_PRIVATE_KEY": private_pem,
    }.items():
        monkeypatch.setenv(name, value)
    records = [_score(1)]
    fake = FakeSalesforce(USER, "", "", known_ids={records[0]["Id"]}, polls_before_complete=0)
    fake.jwt_public_key, fake.jwt_consumer_key = public_pem, "3MVG9-consumer-key"

    configured = crm_resource(Profile.GCP)
    assert (configured.consumer_key, configured.private_key) == ("SALESFORCE_CONSUMER_KEY", "SALESFORCE_PRIVATE_KEY")
    with dg.build_resources({"crm": configured}) as built:
        writer = built.crm.with_session_factory(fake.session, sleep=sleeps.append).writer()
        assert writer.write(_parsed(records)) == []
    [claims] = fake.jwt_assertions
    assert claims["aud"] == "https://login.salesforce.com" and claims["token_host"] == "acme.my"
    assert claims["iss"] == "3MVG9-consumer-key" and claims["sub"] == USER
    assert len(fake.records) == 1


def test_the_crm_workers_refuse_to_start_in_the_gcp_profile(monkeypatch):
    """Issue 12 #6: in gcp the score topics are Schema-Registry Avro and the managed connectors do the work."""
    from typer.testing import CliRunner

    from lead_scoring.cli import app

    monkeypatch.setenv("LEAD_SCORING_PROFILE", "gcp")
    for name in ("writeback", "sink"):
        result = CliRunner().invoke(app, ["worker", name])
        assert result.exit_code == 2, result.output
        assert "do not run in the gcp profile" in " ".join(result.output.split())
