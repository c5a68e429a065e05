"""The connector-config assets: rendered from the project's topics and tables, secrets never included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest

from lead_scoring.contract.fields import LEAD_FIELDS, FieldType
from lead_scoring.contract.validation import TIMESTAMP_PATTERN
from lead_scoring.crm.assets import (
    CONNECTOR_ASSETS,
    ISO_TIMESTAMP_FORMAT,
    ConnectorSettings,
    bigquery_sink_configs,
    salesforce_sink_configs,
    salesforce_source_configs,
)
from lead_scoring.streaming.topics import (
    CONTACT_SCORES,
    INPUT_AVRO,
    INPUT_RAW,
    LEAD_SCORES,
    LEAD_SCORES_SHADOW,
)
from lead_scoring_tests.vendor import check_options, load
from lead_scoring_tests.vendor.templates import check_against_template, provenance, template_properties

SECRETS = {
    "SALESFORCE_USERNAME": "ops@acme.example",
    "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer-key",
    "SALESFORCE_JWT_KEYSTORE_PASSWORD": "ks-pa55",
    "CONFLUENT_KAFKA_API_KEY": "ABCDEF123",
    "CONFLUENT_KAFKA_API_SECRET": "kafka-s3cr3t",
    "GCP_SERVICE_ACCOUNT_KEY_JSON": '{"private_key": "x"}',
}


def test_connector_configs_render_to_versioned_files_with_placeholders_only(tmp_path, monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    run_config = {"ops": {a.key.path[-1]: {"config": {"output_dir": str(tmp_path)}} for a in CONNECTOR_ASSETS}}
    result = dg.materialize_to_memory(CONNECTOR_ASSETS, run_config=run_config)
    assert result.success
    configs = {}
    for asset in CONNECTOR_ASSETS:
        name = asset.key.path[-1]
        [mat] = result.asset_materializations_for_node(name)
        path = Path(mat.metadata["path"].value)
        text = path.read_text()
        assert path.parent == tmp_path / name and path.name == mat.metadata["sha256"].value[:12] + ".json"
        assert (path.parent / "latest.json").read_text() == text
        assert not any(secret in text for secret in SECRETS.values())
        assert "${CONFLUENT_KAFKA_API_SECRET}" in mat.metadata["placeholders"].value
        configs[name] = {c["name"]: c["config"] for c in json.loads(text)}

    source = configs["salesforce_source_connector_config"]
    assert sorted(c["salesforce.object"] for c in source.values()) == ["Contact", "Lead"]
    assert {c["kafka.topic"] for c in source.values()} == {INPUT_RAW}
    assert all(c["include.deleted.records"] == "true" for c in source.values())
    assert all(c["transforms.idKey.fields"] == "Id" for c in source.values())
    assert {c["transforms.objectType.static.value"] for c in source.values()} == {"Lead", "Contact"}

    [sink] = configs["salesforce_sink_connector_config"].values()
    assert sink["salesforce.object.num"] == "2"
    assert {(sink[f"salesforce.object{i}"], sink[f"salesforce.object{i}.topics"]) for i in (1, 2)} == {
        ("Lead", LEAD_SCORES),
        ("Contact", CONTACT_SCORES),
    }
    assert all(sink[f"salesforce.object{i}.sink.operation"] == "update" for i in (1, 2))
    assert "PROBE-" in sink["transforms.dropProbes.filter.condition"]

    [bq] = configs["bigquery_sink_connector_config"].values()
    # the shadow scores too (the ledger view reads both tables); re-score requests never land as CRM changes
    assert bq["topic2table.map"] == (
        f"{INPUT_AVRO}:crm_leads_raw,{LEAD_SCORES}:lead_scores,"
        f"{CONTACT_SCORES}:lead_scores,{LEAD_SCORES_SHADOW}:lead_scores_shadow"
    )
    assert bq["transforms"].startswith("dropRescores,")
    assert bq["transforms.dropRescores.filter.condition"] == "$[?(@._EventType == 'rescore')]"
    assert bq["transforms.dropRescores.filter.type"] == "exclude"
    assert bq["transforms.dropRescores.missing.or.null.behavior"] == "include"
    assert bq["project"] == "${LEAD_SCORING_GCP_PROJECT}"


def _all_configs() -> list[dict]:
    settings = ConnectorSettings()
    return [*salesforce_source_configs(settings), *salesforce_sink_configs(settings), *bigquery_sink_configs(settings)]


@pytest.mark.parametrize("connector", [c["name"] for c in _all_configs()])
def test_every_rendered_key_and_value_is_in_the_vendors_property_table(connector: str) -> None:
    [config] = [c["config"] for c in _all_configs() if c["name"] == connector]
    table = load("confluent_connectors")[config["connector.class"]]
    assert table["source"]["url"].startswith("https://docs.confluent.io/cloud/current/connectors/")
    assert check_options(config, table) == []
    aliases = config.get("transforms", "").split(",") if config.get("transforms") else []
    for alias in aliases:  # every SMT named has a type, and only named SMTs are configured
        assert f"transforms.{alias}.type" in config, alias
    for key in config:
        if key.startswith("transforms."):
            assert key.split(".")[1] in aliases, key


def test_the_old_connector_keys_are_refused_by_the_property_tables() -> None:
    """What would have caught issue 12 #4: internal (self-managed) names and values the managed service refuses."""
    connectors = load("confluent_connectors")
    old_source = {"connector.class": "SalesforceBulkApiV2Source", "salesforce.offset.field": "LastModifiedDate"}
    assert "salesforce.offset.field: not a property of this vendor table" in check_options(
        old_source, connectors["SalesforceBulkApiV2Source"]
    )
    old_sink = {
        "salesforce.object": "Lead",
        "salesforce.sink.object.operation": "update",
        "behavior.on.api.errors": "log",
    }
    problems = check_options(old_sink, connectors["SalesforceSObjectSink"])
    assert "salesforce.object: not a property of this vendor table" in problems
    assert "salesforce.sink.object.operation: not a property of this vendor table" in problems
    assert any(p.startswith("behavior.on.api.errors='log'") for p in problems)


def test_salesforce_datetimes_become_iso_strings_the_contract_accepts() -> None:
    """Confluent's template has no skip.epoch.conversion.fields: a TimestampConverter per contract timestamp
    turns epoch millis (or Salesforce's own text) into ISO-8601 text, the form the contract accepts."""
    for config in (c["config"] for c in salesforce_source_configs(ConnectorSettings())):
        aliases = config["transforms"].split(",")
        converted = {
            config[f"transforms.{a}.field"]
            for a in aliases
            if config[f"transforms.{a}.type"] == "org.apache.kafka.connect.transforms.TimestampConverter$Value"
            and config[f"transforms.{a}.target.type"] == "string"
        }
        assert (
            converted
            == {f.name for f in LEAD_FIELDS if f.type is FieldType.TIMESTAMP}
            == {"LastModifiedDate", "CreatedDate"}
        )
        assert {config[f"transforms.{a}.format"] for a in aliases if a.startswith("iso")} == {ISO_TIMESTAMP_FORMAT}
    # what java.text.SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss.SSSXX") writes in UTC, and Salesforce's own text
    for text in ("2026-03-01T09:15:02.000Z", "2026-03-01T09:15:02.000+0000"):
        assert re.fullmatch(TIMESTAMP_PATTERN, text), text
    assert not re.fullmatch(TIMESTAMP_PATTERN, "1772356502000")  # what an epoch conversion would have sent


def test_connector_assets_are_in_the_crm_group_owned_by_the_platform_team():
    for asset in CONNECTOR_ASSETS:
        spec = next(iter(asset.specs))
        assert spec.group_name == "crm"
        assert spec.owners == ["team:data-platform"]
        assert spec.description and "\n" not in spec.description.strip()


# -- Confluent's own templates (confluentinc/connect-migration-utility, issue 28 #6) ------------------------


@pytest.mark.parametrize("connector", [c["name"] for c in _all_configs()])
def test_every_rendered_config_matches_confluents_own_template(connector: str) -> None:
    """Property names, required properties, recommended values, types and SMTs of the resolved template."""
    [config] = [c["config"] for c in _all_configs() if c["name"] == connector]
    assert check_against_template({"name": connector, **config}, config["connector.class"]) == []


def test_the_templates_are_pinned_copies_with_their_source() -> None:
    source = provenance()
    assert source["repository"] == "https://github.com/confluentinc/connect-migration-utility"
    for connector_class in ("SalesforceBulkApiV2Source", "SalesforceSObjectSink", "BigQueryStorageSink"):
        entry = source["files"][f"{connector_class}_resolved_templates.json"]
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]) and entry["path"].startswith("templates/fm/")
        assert "connector.class" in template_properties(connector_class)


def test_the_indexed_bulk_api_source_config_is_refused_by_confluents_template() -> None:
    """What the source rendered before issue 28: object-indexed keys from a secondary transcription."""
    old = {
        "name": "old",
        "connector.class": "SalesforceBulkApiV2Source",
        "kafka.auth.mode": "KAFKA_API_KEY",
        "salesforce.consumer.key": "${K}",
        "output.data.format": "JSON",
        "tasks.max": "1",
        "salesforce.object.num": "1",
        "salesforce.object1": "Lead",
        "salesforce.object1.topic": INPUT_RAW,
        "salesforce.object1.since": "2024-01-01",
        "salesforce.object1.skip.epoch.conversion.fields": "CreatedDate",
    }
    problems = check_against_template(old, "SalesforceBulkApiV2Source")
    for key in (
        "salesforce.object.num",
        "salesforce.object1",
        "salesforce.object1.topic",
        "salesforce.object1.skip.epoch.conversion.fields",
    ):
        assert f"{key}: not a property of Confluent's SalesforceBulkApiV2Source template" in problems
    for key in ("salesforce.object", "salesforce.since", "kafka.topic"):
        assert f"{key}: required by Confluent's SalesforceBulkApiV2Source template, missing" in problems
    # values and SMTs are held to the template too
    assert (
        check_against_template({**old, "include.deleted.records": "yes"}, "SalesforceBulkApiV2Source").count(
            "include.deleted.records='yes': the template's type is BOOLEAN (true | false)"
        )
        == 1
    )
    assert any(
        "not an SMT Confluent allows" in p
        for p in check_against_template(
            {**old, "transforms": "x", "transforms.x.type": "com.example.Nope"}, "SalesforceBulkApiV2Source"
        )
    )


def test_deletes_batching_and_the_key_format_follow_the_templates_options() -> None:
    settings = ConnectorSettings()
    template = template_properties("SalesforceBulkApiV2Source")["include.deleted.records"]
    assert template["default_value"] is False  # off unless asked: erasure needs it on
    assert all(c["config"]["include.deleted.records"] == "true" for c in salesforce_source_configs(settings))
    [sink] = [c["config"] for c in salesforce_sink_configs(settings)]
    batch = template_properties("SalesforceSObjectSink")["salesforce.batch.size"]
    assert sink["salesforce.enable.batching"] == "true"
    assert 1 <= int(sink["salesforce.batch.size"]) <= int(batch["default_value"]) == 200
    [bq] = [c["config"] for c in bigquery_sink_configs(settings)]
    key_format = template_properties("BigQueryStorageSink")["input.key.format"]
    # Flink's key.format 'raw' writes the Id as plain UTF-8 text; the template's default would be BYTES
    assert key_format["default_value"] == "BYTES" and bq["input.key.format"] == "STRING"
    assert "STRING" in key_format["recommended_values"]
