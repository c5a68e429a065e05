"""In-process tests of the kserve Model (load / preprocess / predict), as kserve's sklearnserver does, and of
V2 request parsing through kserve's own request types (`server.parse_v2_request`)."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from pathlib import Path

import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

import lead_scoring.serving
from lead_scoring.contract import FEATURES
from lead_scoring.contract.hashing import canonical_features, features_hash
from lead_scoring.serving.model import LeadScoringModel, RecordRejected, load_verified
from lead_scoring.serving.server import parse_v2_request
from lead_scoring.settings import Profile
from lead_scoring.storage.artifacts import ArtifactIntegrityError, ArtifactRepository, LocalBlobs
from lead_scoring.training.grades import GradeScale
from lead_scoring.training.model import FAMILIES, LeadScorer, ModelParams, build_pipeline, features_frame, fit
from lead_scoring_tests.serving.conftest import BAD, V1
from lead_scoring_tests.serving.records import make_records


@pytest.fixture(scope="module")
def model(repo: ArtifactRepository) -> LeadScoringModel:
    m = LeadScoringModel("lead_scorer", repo.artifact(V1).uri, Profile.LOCAL)
    assert m.load() is True
    return m


@pytest.fixture(scope="module")
def reference(repo: ArtifactRepository) -> LeadScorer:
    pipeline, manifest = repo.load(V1)
    return LeadScorer(pipeline, manifest["version"])


def test_load_verifies_and_reports_version(model: LeadScoringModel) -> None:
    assert model.ready and model.model_version == V1 and model.load_error is None


def test_load_refuses_a_tampered_artifact(repo: ArtifactRepository, caplog: pytest.LogCaptureFixture) -> None:
    m = LeadScoringModel("lead_scorer", repo.artifact(BAD).uri, Profile.LOCAL)
    with caplog.at_level(logging.ERROR):
        assert m.load() is False
    assert not m.ready and m.scorer is None
    assert "sha256" in (m.load_error or "") and "does not match" in m.load_error
    assert any("integrity" in r.getMessage() for r in caplog.records)
    with pytest.raises(ArtifactIntegrityError):
        load_verified(repo.artifact(BAD).uri, Profile.LOCAL)


def test_load_of_a_missing_artifact_is_not_ready(tmp_path) -> None:
    m = LeadScoringModel("lead_scorer", str(tmp_path / "models" / "nope"), Profile.LOCAL)
    assert m.load() is False and not m.ready and "no artifact file" in (m.load_error or "")


def test_start_does_not_mark_an_unloaded_model_ready(tmp_path) -> None:
    m = LeadScoringModel("lead_scorer", str(tmp_path / "models" / "nope"), Profile.LOCAL)
    m.load()
    m.start()
    assert not m.ready


def test_v1_scores_good_rows_and_reports_bad_rows(model: LeadScoringModel, reference: LeadScorer) -> None:
    records, _ = make_records(4, seed=11)
    bad = dict(records[1], Time_On_Website__c="long")
    missing = {k: v for k, v in records[2].items() if k != "Id"}
    batch = model.preprocess({"instances": [records[0], bad, missing, records[3]]})
    result = model.predict(batch)
    predictions = result["predictions"]
    assert len(predictions) == 4
    expected = reference.score_records([records[0], records[3]])
    for got, want in zip([predictions[0], predictions[3]], expected, strict=True):
        assert got["score"] == want.score and got["reasons"] == want.reasons and got["model_version"] == V1
        assert 0 <= got["score"] <= 100 and 1 <= len(got["reasons"]) <= 3
        assert all(r[0] in "+-" for r in got["reasons"])
        assert got["reasons_text"] == "; ".join(got["reasons"])
    assert predictions[1]["errors"] == [{"field": "Time_On_Website__c", "reason": "expected a number, got string"}]
    assert predictions[2]["errors"][0]["field"] == "Id"


def test_reasons_are_per_record_not_global(model: LeadScoringModel) -> None:
    records, _ = make_records(60, seed=12)
    predictions = model.predict(model.preprocess({"instances": records}))["predictions"]
    assert len({tuple(p["reasons"]) for p in predictions}) > 5
    assert len({p["score"] for p in predictions}) > 10


def test_v1_all_rows_bad_is_rejected_naming_fields(model: LeadScoringModel) -> None:
    with pytest.raises(RecordRejected) as info:
        model.preprocess({"instances": [{"Id": 3}]})
    fields = {e.field for e in info.value.errors}
    assert {"instances[0].Id", "instances[0]._ObjectType", "instances[0].LastModifiedDate"} <= fields


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "instances"),
        ({"instances": "x"}, "instances"),
        ({"instances": []}, "instances"),
        ([1, 2], "$"),
        (b"{not json", "$"),
    ],
)
def test_v1_malformed_requests(model: LeadScoringModel, payload, field: str) -> None:
    with pytest.raises(RecordRejected) as info:
        model.preprocess(payload)
    assert info.value.errors[0].field == field


def _v2(data, name="RECORD", datatype="BYTES", output="SCORE") -> InferRequest:
    return InferRequest(
        "lead_scorer",
        [InferInput(name, [len(data)], datatype, data)],
        request_id="r1",
        request_outputs=[RequestedOutput(output)] if output else None,
    )


def test_v2_upper_case_names_one_bytes_output(model: LeadScoringModel, reference: LeadScorer) -> None:
    records, _ = make_records(2, seed=13)
    response = model.predict(model.preprocess(_v2([json.dumps(r) for r in records])))
    assert isinstance(response, InferResponse) and len(response.outputs) == 1
    output = response.outputs[0]
    assert output.name == "SCORE" and output.datatype == "BYTES" and output.shape == [2]
    decoded = [json.loads(d) for d in output.data]
    assert [d["score"] for d in decoded] == [s.score for s in reference.score_records(records)]
    assert all(d["model_version"] == V1 for d in decoded)


@pytest.mark.parametrize(
    "request_, field",
    [
        (_v2(['{"Id": "x"}']), "record[0]._ObjectType"),
        (_v2(["nope"]), "record[0]"),
        (_v2(["{}"], name="features"), "inputs"),
        (_v2(["{}"], datatype="FP32"), "inputs.RECORD.datatype"),
        (_v2([json.dumps({"Id": "a"})], output="PROBABILITY"), "outputs"),
    ],
)
def test_v2_rejections_name_the_field(model: LeadScoringModel, request_, field: str) -> None:
    with pytest.raises(RecordRejected) as info:
        model.preprocess(request_)
    assert field in {e.field for e in info.value.errors}


def test_full_kserve_call_path(model: LeadScoringModel) -> None:
    records, _ = make_records(1, seed=14)
    response, _headers = asyncio.run(model({"instances": records}, headers={}))
    assert response["predictions"][0]["model_version"] == V1


def test_a_manifest_without_grades_still_serves(model: LeadScoringModel) -> None:
    # the V1 fixture's manifest predates grades: scores as before, no grade
    assert "grades" not in model.manifest and model.scorer is not None and model.scorer.grades is None


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_serves_exact_scores_with_manifest_grades(family: str, tmp_path) -> None:
    records, labels = make_records(400, seed=21)
    pipeline = fit(
        build_pipeline(ModelParams(family=family, min_category_frequency=2)), features_frame(records), labels
    )
    section = {"min_score": {"A": 70, "B": 45, "C": 20}, "method": "test"}
    repo = ArtifactRepository(LocalBlobs(tmp_path), Profile.LOCAL)
    artifact = repo.save(pipeline, {"family": family, "grades": section}, version=f"m-{family}")
    served = LeadScoringModel("lead_scorer", artifact.uri, Profile.LOCAL)
    assert served.load() is True and served.scorer is not None
    assert served.scorer.family.name == family and served.scorer.grades == GradeScale(section["min_score"])
    probe, _ = make_records(30, seed=22)
    predictions = served.predict(served.preprocess({"instances": probe}))["predictions"]
    expected = pipeline.predict_proba(features_frame(probe))[:, 1]
    assert [p["score"] for p in predictions] == [int(round(100 * p)) for p in expected]
    scores = served.scorer.score_records(probe)
    assert [s.grade for s in scores] == [served.scorer.grades.grade(p["score"]) for p in predictions]
    # every prediction carries its grade (what Flink writes to Lead_Grade__c) and the features' hash
    assert [p["grade"] for p in predictions] == [s.grade for s in scores]
    assert {p["grade"] for p in predictions} <= set("ABCD")
    assert [p["features_hash"] for p in predictions] == [features_hash(r) for r in probe]


def test_features_hash_is_of_the_features_only_and_stable() -> None:
    record = make_records(1, seed=31)[0][0]
    digest = features_hash(record)
    assert len(digest) == 16 and int(digest, 16) >= 0
    # PII, Id, timestamps and the label are not features: they do not change the hash
    assert (
        features_hash(
            {
                **record,
                "Email": "other@example.com",
                "Id": "00Qother",
                "IsConverted": True,
                "LastModifiedDate": "2030-01-01T00:00:00Z",
            }
        )
        == digest
    )
    # a number sent as an int hashes like the same float; a changed feature changes the hash
    assert features_hash({**record, "Time_On_Website__c": 600}) == features_hash(
        {**record, "Time_On_Website__c": 600.0}
    )
    assert (
        features_hash({**record, "Lead_Origin__c": "API" if record["Lead_Origin__c"] != "API" else "Lead Import"})
        != digest
    )
    assert set(canonical_features(record)) == set(FEATURES)


def test_a_model_without_grades_predicts_a_null_grade(model: LeadScoringModel) -> None:
    records, _ = make_records(2, seed=32)
    predictions = model.predict(model.preprocess({"instances": records}))["predictions"]
    assert [p["grade"] for p in predictions] == [None, None]
    assert all(len(p["features_hash"]) == 16 for p in predictions)


def test_a_broken_grades_section_keeps_the_model_not_ready(tmp_path) -> None:
    records, labels = make_records(200, seed=23)
    pipeline = fit(build_pipeline(ModelParams(min_category_frequency=2)), features_frame(records), labels)
    repo = ArtifactRepository(LocalBlobs(tmp_path), Profile.LOCAL)
    artifact = repo.save(pipeline, {"grades": {"min_score": {"A": 10, "B": 50, "C": 5}}}, version="m-broken")
    m = LeadScoringModel("lead_scorer", artifact.uri, Profile.LOCAL)
    assert m.load() is False and not m.ready
    assert "grades" in (m.load_error or "") and "retrain" in m.load_error


# -- V2 request parsing: kserve's InferenceRequest -> InferRequest, 400s naming every wrong field ----------
@pytest.mark.parametrize(
    "body, fields",
    [
        (b'{"inputs": [{"name": "RECORD"}]}', ["inputs[0].datatype", "inputs[0].shape", "inputs[0].data"]),
        (b'{"inputs": [{"name": "R", "datatype": "BYTES", "shape": [true], "data": []}]}', ["inputs[0].shape"]),
        (b'{"inputs": [{"name": "R", "datatype": "BYTES", "shape": ["1", 2.5], "data": []}]}', ["inputs[0].shape"]),
        (
            b'{"inputs": [{"name": 1, "datatype": "BYTES", "shape": [1], "data": {}}]}',
            ["inputs[0].name", "inputs[0].data"],
        ),
        (b'{"inputs": [], "parameters": {"k": [1]}}', ["parameters"]),
        (b'{"inputs": [], "id": 7}', ["id"]),
        (b'{"inputs": [], "outputs": [{}]}', ["outputs[0].name"]),
        (
            b'{"outputs": [{}], "inputs": [{"name": "R"}], "id": 3}',
            ["id", "inputs[0].datatype", "inputs[0].shape", "inputs[0].data", "outputs[0].name"],
        ),
        (b'{"inputs": ["x"]}', ["inputs[0]"]),
        (b'{"inputs": [{"name": "R", "datatype": "FP16", "shape": [1], "data": [1.0]}]}', ["inputs[0].datatype"]),
        (b'{"outputs": []}', ["inputs"]),
        (b"[]", ["$"]),
        (b'{"inputs": 1', ["$"]),
        (b"\xff", ["$"]),
    ],
)
def test_v2_parsing_names_every_wrong_field(body: bytes, fields: list[str]) -> None:
    with pytest.raises(RecordRejected) as info:
        parse_v2_request(body, "lead_scorer")
    assert [e.field for e in info.value.errors] == fields
    assert all(e.reason for e in info.value.errors)


def test_v2_parsing_builds_kserves_infer_request() -> None:
    body = {
        "id": "r1",
        "inputs": [{"name": "RECORD", "datatype": "BYTES", "shape": [1], "data": ["{}"]}],
        "outputs": [{"name": "SCORE"}],
    }
    request = parse_v2_request(json.dumps(body).encode(), "lead_scorer", "latest")
    assert isinstance(request, InferRequest)
    assert (request.id, request.model_name, request.model_version) == ("r1", "lead_scorer", "latest")
    assert [(t.name, t.datatype, t.shape, t.data) for t in request.inputs] == [("RECORD", "BYTES", [1], ["{}"])]
    assert [o.name for o in request.request_outputs] == ["SCORE"]


def test_serving_uses_no_private_kserve_names() -> None:
    """kserve upgrades must not break the server: no underscore attribute or import in the server's modules."""
    folder = Path(lead_scoring.serving.__file__).parent
    for name in ("server.py", "model.py", "cli.py", "__main__.py"):
        tree = ast.parse((folder / name).read_text())
        private = [
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        ]
        private += [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kserve")
            for alias in node.names
            if alias.name.startswith("_")
        ]
        assert private == [], f"{name} uses {private}"
