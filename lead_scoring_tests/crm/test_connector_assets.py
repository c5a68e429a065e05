"""The connector-config assets: rendered from the project's topics and tables, secrets never included."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from lead_scoring.crm.assets import CONNECTOR_ASSETS
from lead_scoring.streaming.topics import CONTACT_SCORES, INPUT_AVRO, INPUT_RAW, LEAD_SCORES

SECRETS = {"SALESFORCE_USERNAME": "ops@acme.example", "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer-key",
           "SALESFORCE_JWT_KEYSTORE_PASSWORD": "ks-pa55", "CONFLUENT_KAFKA_API_KEY": "ABCDEF123",
           "CONFLUENT_KAFKA_API_SECRET": "kafka-s3cr3t", "GCP_SERVICE_ACCOUNT_KEY_JSON": '{"private_key": "x"}'}


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
    assert all(c["transforms.idKey.fields"] == "Id" for c in source.values())
    assert {c["transforms.objectType.static.value"] for c in source.values()} == {"Lead", "Contact"}

    sink = configs["salesforce_sink_connector_config"]
    assert {(c["salesforce.object"], c["topics"]) for c in sink.values()} == {("Lead", LEAD_SCORES),
                                                                                ("Contact", CONTACT_SCORES)}
    assert all(c["salesforce.sink.object.operation"] == "update" and "PROBE-" in c["transforms.dropProbes.filter.condition"]
               for c in sink.values())

    [bq] = configs["bigquery_sink_connector_config"].values()
    assert bq["topic2table.map"] == f"{INPUT_AVRO}:crm_leads_raw,{LEAD_SCORES}:lead_scores,{CONTACT_SCORES}:lead_scores"
    assert bq["project"] == "${LEAD_SCORING_GCP_PROJECT}"


def test_connector_assets_are_in_the_crm_group_owned_by_the_platform_team():
    for asset in CONNECTOR_ASSETS:
        spec = next(iter(asset.specs))
        assert spec.group_name == "crm"
        assert spec.owners == ["team:data-platform"]
        assert spec.description and "\n" not in spec.description.strip()
