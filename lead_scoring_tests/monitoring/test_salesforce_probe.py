"""The gcp profile's Salesforce probe: create a probe Lead, wait for its score, always delete it."""

from __future__ import annotations

import pytest

from lead_scoring.monitoring.latency import ProbeError, run_salesforce_probe


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeLeadApi:
    """simple-salesforce's `sf.Lead` as the probe uses it: the score appears after `score_after` polls."""

    def __init__(self, score_after: int | None, fail_delete: bool = False) -> None:
        self.score_after = score_after
        self.fail_delete = fail_delete
        self.created: list[dict] = []
        self.polls = 0
        self.deleted: list[str] = []

    def create(self, fields: dict) -> dict:
        self.created.append(fields)
        return {"id": "00Q000000PROBE01", "success": True, "errors": []}

    def get(self, lead_id: str) -> dict:
        assert lead_id == "00Q000000PROBE01"
        self.polls += 1
        ready = self.score_after is not None and self.polls > self.score_after
        return {"Id": lead_id, "Lead_Score__c": 37 if ready else None}

    def delete(self, lead_id: str) -> int:
        if self.fail_delete:
            raise RuntimeError("INSUFFICIENT_ACCESS")
        self.deleted.append(lead_id)
        return 204


class FakeSalesforce:
    def __init__(self, lead: FakeLeadApi) -> None:
        self.Lead = lead


def test_probe_lead_is_scored_then_deleted():
    clock, lead = FakeClock(), FakeLeadApi(score_after=3)
    result = run_salesforce_probe(FakeSalesforce(lead), timeout_s=30, poll_s=2.0, clock=clock, sleep=clock.sleep)
    assert result.score == 37 and result.latency_s == pytest.approx(6.0)
    assert lead.created[0]["LastName"].startswith("PROBE-")
    assert lead.deleted == ["00Q000000PROBE01"] and result.deleted


def test_probe_lead_without_a_score_is_still_deleted():
    clock, lead = FakeClock(), FakeLeadApi(score_after=None)
    result = run_salesforce_probe(FakeSalesforce(lead), timeout_s=10, poll_s=2.0, clock=clock, sleep=clock.sleep)
    assert result.latency_s is None and result.score is None
    assert lead.polls == 5 and lead.deleted == ["00Q000000PROBE01"]


def test_failed_delete_is_reported_not_raised(caplog):
    clock, lead = FakeClock(), FakeLeadApi(score_after=0, fail_delete=True)
    result = run_salesforce_probe(FakeSalesforce(lead), timeout_s=10, clock=clock, sleep=clock.sleep)
    assert result.score == 37 and not result.deleted
    assert "could not delete Salesforce probe Lead 00Q000000PROBE01" in caplog.text


def test_refused_create_is_an_error():
    class Refusing(FakeLeadApi):
        def create(self, fields: dict) -> dict:
            return {"success": False, "errors": ["REQUIRED_FIELD_MISSING"]}

    with pytest.raises(ProbeError, match="did not create the probe Lead"):
        run_salesforce_probe(FakeSalesforce(Refusing(score_after=0)), timeout_s=5)
