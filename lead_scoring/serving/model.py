"""The lead scorer as a KServe model: `load` (verified), `preprocess` (contract), `predict` (score + reasons).

One `kserve.Model` subclass serves every protocol of the server:

* KServe V1 / Vertex AI rows: ``{"instances": [record, ...]}`` -> ``{"predictions": [result | error, ...]}``.
  A row that breaks the contract gets ``{"error": ..., "errors": [{"field", "reason"}]}`` in its place;
  the good rows are still scored. If every row is bad the request fails with 400 naming the fields.
* KServe V2 / Flink's triton provider: one BYTES input named ``record`` (any case) whose elements are
  JSON records; the answer is one BYTES output named ``score`` (echoing the requested spelling) whose
  elements are JSON strings ``{"score", "reasons", "reasons_text", "model_version", "grade", "features_hash"}``.

Every prediction (V1 row or V2 element) carries the score's `grade` (A-D from the manifest's cut-offs; null
for a model trained before grades) and `features_hash` (`contract.hashing.features_hash`: a hash of the
feature values scored, never of PII).

Records are contract records (`shared/contracts/lead-record.md`), checked by the contract's validator.
PII fields are never logged: errors name fields, never values of PII fields.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from kserve import Model
from kserve.errors import InvalidInput
from kserve.metrics import PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from lead_scoring.contract import parse_record
from lead_scoring.contract.fields import PII_FIELDS
from lead_scoring.contract.hashing import features_hash
from lead_scoring.contract.validation import FieldError
from lead_scoring.settings import Profile
from lead_scoring.storage.artifacts import ArtifactError, ArtifactIntegrityError, ArtifactSignatureError, load_folder
from lead_scoring.training.model import LeadScorer, format_reasons

logger = logging.getLogger(__name__)

INPUT_NAME = "record"  # V2 input tensor (matched without regard to case)
OUTPUT_NAME = "score"  # V2 output tensor (matched without regard to case)
MAX_BATCH_ROWS = 1000


class RecordRejected(InvalidInput):
    """A request the contract refuses: answered with 400 and the failing fields."""

    def __init__(self, errors: list[FieldError], prefix: str = ""):
        self.errors = [FieldError(f"{prefix}{e.field}" if prefix else e.field, e.reason) for e in errors]
        super().__init__("; ".join(str(e) for e in self.errors))


def load_verified(uri: str, profile: Profile, gcs_client: Any | None = None) -> tuple[Any, dict[str, Any]]:
    """(pipeline, manifest) from a model folder (`storage.artifacts.load_folder`: any folder, e.g. the copy
    Vertex AI hands the container as AIP_STORAGE_URI; sha256 checked before the pickle is opened)."""
    return load_folder(uri, profile, gcs_client)


@dataclass
class Batch:
    """What `preprocess` hands `predict`: clean records plus the per-row rejections."""

    protocol: str  # "v1" or "v2"
    records: list[dict[str, Any]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # row index of each clean record
    rejected: dict[int, list[FieldError]] = field(default_factory=dict)
    size: int = 0
    output_name: str = OUTPUT_NAME
    request_id: str | None = None


class LeadScoringModel(Model):
    """Scores contract records with a verified artifact; explains each score with its top reasons."""

    def __init__(self, name: str, artifact_uri: str, profile: Profile, gcs_client: Any | None = None):
        super().__init__(name)
        self.artifact_uri = artifact_uri
        self.profile = profile  # where the signing key may come from (`storage.artifacts.signing_key`)
        self.gcs_client = gcs_client
        self.scorer: LeadScorer | None = None
        self.manifest: dict[str, Any] = {}
        self.load_error: str | None = None  # full reason (with paths): for the server's log only
        self.load_problem: str | None = None  # the same without local paths: what an HTTP answer may say

    @property
    def model_version(self) -> str | None:
        return self.scorer.model_version if self.scorer else None

    def load(self) -> bool:
        """Fetch, verify (sha256) and open the artifact; on any failure stay not-ready and say why."""
        self.ready = False
        try:
            pipeline, manifest = load_verified(self.artifact_uri, self.profile, self.gcs_client)
            self.scorer = LeadScorer.from_manifest(pipeline, manifest)  # grade cut-offs too, when the manifest has them
        except ArtifactSignatureError as exc:
            self.load_error = str(exc)
            self.load_problem = (
                "its signature does not verify with this server's "
                "LEAD_SCORING_ARTIFACT_SIGNING_KEY (unsigned, tampered, or signed with another key)"
            )
            logger.error("model NOT loaded, artifact signature check failed: %s", exc)
            return False
        except ArtifactIntegrityError as exc:
            self.load_error = str(exc)
            self.load_problem = "its model file does not match the sha256 in its manifest"
            logger.error("model NOT loaded, artifact integrity check failed: %s", exc)
            return False
        except (ArtifactError, ValueError, KeyError, OSError) as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            self.load_problem = f"it could not be read from the artifact store ({type(exc).__name__})"
            logger.error("model NOT loaded from %s: %s", self.artifact_uri, self.load_error)
            return False
        self.manifest = manifest
        self.load_error = self.load_problem = None
        self.ready = True
        logger.info(
            "model %s version %s loaded from %s (sha256 %s)",
            self.name,
            self.scorer.model_version,
            self.artifact_uri,
            str(manifest["sha256"])[:12],
        )
        return True

    def start(self) -> None:
        # kserve's default marks any registered model ready; ours is ready only after a verified load.
        pass

    def validate(self, payload: Any) -> Any:
        # The contract's validator already ran in `preprocess`; kserve's generic checks do not apply.
        return payload

    # -- V2 model metadata (kserve's DataPlane.model_metadata reads these) ---------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": OUTPUT_NAME, "datatype": "BYTES", "shape": [-1]}]

    # -- preprocess ---------------------------------------------------------------------------------
    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:
        if isinstance(payload, InferRequest):
            return v2_batch(payload)
        return v1_batch(payload)

    def score(self, payload: Any) -> dict[str, Any] | InferResponse:
        """`preprocess` then `predict`, synchronously: what the server runs on its scoring threads, off the
        event loop (kserve's `__call__` runs both on the loop; ours are plain functions). Timed into kserve's own
        Prometheus histograms as `__call__` does, so `/metrics` still counts every request
        (`request_preprocess_seconds`, `request_predict_seconds`)."""
        labels = get_labels(self.name)
        with PRE_HIST_TIME.labels(**labels).time():
            batch = self.preprocess(payload)
        with PREDICT_HIST_TIME.labels(**labels).time():
            return self.predict(batch)

    # -- predict ------------------------------------------------------------------------------------
    def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> dict[str, Any] | InferResponse:
        assert self.scorer is not None, "predict called before load"
        version = self.scorer.model_version
        scores = self.scorer.score_records(payload.records) if payload.records else []
        results: list[dict[str, Any] | None] = [None] * payload.size
        for position, record, score in zip(payload.positions, payload.records, scores, strict=True):
            results[position] = {
                "score": score.score,
                "reasons": score.reasons,
                "reasons_text": format_reasons(score.reasons),
                "model_version": version,
                "grade": score.grade,
                "features_hash": features_hash(record),
            }
        if payload.protocol == "v2":
            data = [orjson.dumps(r).decode() for r in results]
            output = InferOutput(name=payload.output_name, shape=[len(data)], datatype="BYTES", data=data)
            return InferResponse(
                response_id=payload.request_id or "",
                model_name=self.name,
                model_version=version,
                infer_outputs=[output],
            )
        for index, errors in payload.rejected.items():
            results[index] = _error_row(errors)
        return {"predictions": results}


# -- request -> Batch (module functions: the model keeps no private state beyond kserve's) --------------
def v1_batch(payload: Any) -> Batch:
    """A V1 / Vertex AI body (`{"instances": [...]}`, parsed or raw JSON) -> a Batch with per-row rejections."""
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RecordRejected([FieldError("$", f"not valid JSON: {exc}")]) from None
    if not isinstance(payload, Mapping):
        raise RecordRejected([FieldError("$", "expected a JSON object with an 'instances' array")])
    instances = payload.get("instances")
    if instances is None:
        raise RecordRejected([FieldError("instances", "required field is missing")])
    if not isinstance(instances, list):
        raise RecordRejected([FieldError("instances", "expected an array of records")])
    if not instances:
        raise RecordRejected([FieldError("instances", "must hold at least one record")])
    if len(instances) > MAX_BATCH_ROWS:
        raise RecordRejected([FieldError("instances", f"at most {MAX_BATCH_ROWS} records per request")])
    batch = Batch(protocol="v1", size=len(instances))
    for i, instance in enumerate(instances):
        _add_row(batch, i, instance)
    if not batch.records:
        raise RecordRejected(
            [e for i in sorted(batch.rejected) for e in _prefixed(batch.rejected[i], f"instances[{i}].")]
        )
    return batch


def v2_batch(request: InferRequest) -> Batch:
    """A kserve InferRequest holding one BYTES tensor of JSON records -> a Batch (all rows must be good)."""
    matches = [t for t in request.inputs if str(t.name).lower() == INPUT_NAME]
    if len(matches) != 1:
        names = ", ".join(repr(t.name) for t in request.inputs) or "none"
        raise RecordRejected([FieldError("inputs", f"expected one input named {INPUT_NAME!r} (any case); got {names}")])
    tensor = matches[0]
    if tensor.datatype != "BYTES":
        raise RecordRejected(
            [FieldError(f"inputs.{tensor.name}.datatype", f"expected BYTES (JSON records), got {tensor.datatype}")]
        )
    data = tensor.data
    if not isinstance(data, list) or not data:
        raise RecordRejected([FieldError(f"inputs.{tensor.name}.data", "expected a non-empty array of JSON records")])
    shape = list(tensor.shape or [])
    if any(dim < 0 for dim in shape) or math.prod(shape) != len(data):
        raise RecordRejected(
            [
                FieldError(
                    f"inputs.{tensor.name}.shape",
                    f"does not match the {len(data)} element(s) of data; expected [{len(data)}]",
                )
            ]
        )
    if len(data) > MAX_BATCH_ROWS:
        raise RecordRejected([FieldError(f"inputs.{tensor.name}.data", f"at most {MAX_BATCH_ROWS} records")])
    output_name = OUTPUT_NAME
    if request.request_outputs:
        wanted = [o.name for o in request.request_outputs]
        if len(wanted) != 1 or str(wanted[0]).lower() != OUTPUT_NAME:
            raise RecordRejected(
                [FieldError("outputs", f"this model has one output, {OUTPUT_NAME!r}; asked for {wanted}")]
            )
        output_name = wanted[0]
    batch = Batch(protocol="v2", size=len(data), output_name=output_name, request_id=request.id)
    for i, element in enumerate(data):
        if not isinstance(element, (str, bytes, bytearray, Mapping)):
            batch.rejected[i] = [FieldError("$", "expected a JSON record (string)")]
            continue
        _add_row(batch, i, element)
    if batch.rejected:
        # V2 tensors are all-or-nothing: Flink sends one row per request, so a bad row fails it.
        raise RecordRejected(
            [e for i in sorted(batch.rejected) for e in _prefixed(batch.rejected[i], f"{INPUT_NAME}[{i}].")]
        )
    return batch


def _add_row(batch: Batch, index: int, instance: Any) -> None:
    record, errors = parse_record(instance)
    if errors:
        batch.rejected[index] = errors
        logger.debug("row %d rejected: %s", index, "; ".join(_loggable(e) for e in errors))
    else:
        batch.records.append(record)  # type: ignore[arg-type]
        batch.positions.append(index)


def _prefixed(errors: list[FieldError], prefix: str) -> list[FieldError]:
    return [FieldError(prefix + e.field if e.field != "$" else prefix.rstrip("."), e.reason) for e in errors]


def _error_row(errors: list[FieldError]) -> dict[str, Any]:
    return {
        "error": "; ".join(str(e) for e in errors),
        "errors": [{"field": e.field, "reason": e.reason} for e in errors],
    }


def _loggable(error: FieldError) -> str:
    # Validator reasons may quote a value (e.g. a bad enum); never let a PII value reach the log.
    return f"{error.field}: invalid" if error.field in PII_FIELDS else str(error)


def error_body(errors: list[FieldError]) -> dict[str, Any]:
    """The JSON body of a 400: a readable `error` plus the structured field list."""
    return _error_row(errors)
