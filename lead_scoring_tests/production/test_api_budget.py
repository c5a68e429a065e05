"""The Salesforce API arithmetic of the gcp connectors (issue 28): figures for a stated org, and refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lead_scoring.cli import app
from lead_scoring.crm.assets import ConnectorSettings, salesforce_sink_configs, salesforce_source_configs
from lead_scoring.production.api_budget import daily_api_allocation, project_api_budget

VERSION = "m20261201-090000-abc123"


def _budget(settings: ConnectorSettings, **kw):
    return project_api_budget(salesforce_source_configs(settings), salesforce_sink_configs(settings), **kw)


def test_the_allocation_is_the_editions_formula() -> None:
    assert daily_api_allocation(100) == 200_000  # Enterprise: 100,000 + 1,000 per licence
    assert daily_api_allocation(100, "Unlimited") == 600_000
    with pytest.raises(ValueError, match="edition='Free'"):
        daily_api_allocation(1, "Free")


def test_the_default_configuration_for_a_100_licence_org_at_10000_changes_a_day() -> None:
    budget = _budget(ConnectorSettings(), changes_per_day=10_000, licenses=100)
    # source: 2 objects x 1,440 polls (60 s) = 2,880 query jobs, 3 calls each
    assert (budget.polls_per_day_per_object, budget.source_query_jobs, budget.source_calls) == (1_440, 2_880, 8_640)
    # sink: 3.5 writes per poll of one object, batched: one call per poll with a change
    assert budget.batching and budget.batch_size == 200 and budget.sink_calls == 2_880
    assert budget.total_calls == 11_520 and budget.allocation == 200_000
    assert round(budget.api_fraction, 4) == 0.0576 and budget.problems() == []


def test_batches_fill_at_high_rates_and_never_cost_more_than_one_call_per_record() -> None:
    busy = _budget(ConnectorSettings(), changes_per_day=1_000_000, licenses=500)
    assert busy.sink_calls == 2 * 1_440 * 2  # 347 writes per poll of one object: two batches of <= 200
    quiet = _budget(ConnectorSettings(), changes_per_day=500, licenses=10)
    assert quiet.sink_calls == 500  # fewer changes than polls: each alone in its batch


def test_the_configuration_before_issue_28_is_refused() -> None:
    """10 s polls and the SObject sink unbatched: the query jobs alone exceed the org's daily maximum."""
    old = ConnectorSettings(poll_interval_ms=10_000)
    sink = salesforce_sink_configs(old)
    unbatched = [
        {
            **sink[0],
            "config": {
                k: v
                for k, v in sink[0]["config"].items()
                if not k.startswith(("salesforce.enable.batching", "salesforce.batch"))
            },
        }
    ]
    budget = project_api_budget(salesforce_source_configs(old), unbatched, changes_per_day=10_000, licenses=100)
    assert budget.source_query_jobs == 17_280 and budget.sink_calls == 10_000
    [problem] = budget.problems()
    assert "17,280 Bulk API 2.0 query jobs/day is 173% of DailyBulkV2QueryJobs 10,000" in problem
    small_org = project_api_budget(
        salesforce_source_configs(old), unbatched, changes_per_day=10_000, licenses=0, share=0.5
    )
    assert any("API calls/day is" in p and "of DailyApiRequests 100,000" in p for p in small_org.problems())


def test_plan_prints_the_budget_and_fails_over_the_share(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    ok = CliRunner().invoke(
        app, ["plan", "--model-version", VERSION, "--changes-per-day", "10000", "--licenses", "100"]
    )
    assert ok.exit_code == 0, ok.output
    assert "Salesforce API budget" in ok.output
    assert "total: 11,520 API calls/day = 5.8% of 200,000 (allowed share 50%)" in ok.output
    assert "Enterprise Edition, 100 licences" in ok.output
    as_json = CliRunner().invoke(
        app, ["plan", "--model-version", VERSION, "--json", "--changes-per-day", "100000000", "--licenses", "0"]
    )
    assert as_json.exit_code == 1
    budget = json.loads(as_json.output)["salesforce_api_budget"]
    assert budget["total_calls"] > 50_000 and budget["problems"]
    refused = CliRunner().invoke(app, ["plan", "--model-version", VERSION, "--edition", "Free"])
    assert refused.exit_code == 2 and "--edition Free" in refused.output
