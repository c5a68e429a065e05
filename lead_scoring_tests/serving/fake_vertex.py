"""A Vertex AI on 127.0.0.1 for the REAL google-cloud-aiplatform SDK: a gRPC server speaking the
EndpointService / ModelService / PredictionService protos, recording every request proto it receives.

The only seam is `google.api_core.grpc_helpers.create_channel` -> an insecure channel to the fake (every
gapic gRPC transport builds its channel there) plus `aiplatform.init(credentials=Anonymous,
api_endpoint=127.0.0.1:port)`; Model.upload / Endpoint.deploy / update / predict / undeploy, the gapic
clients, proto serialization and the long-running operations are the library's own code. Long-running
operations are answered done, with the response packed as the real service packs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, Optional

import grpc
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

PARENT = "projects/p/locations/europe-west4"
MODEL = f"{PARENT}/models/42"


class FakeVertex:
    """One endpoint and one Model Registry model; deployed models d1, d2, ... answer predictions."""

    def __init__(self, endpoint_id: str = "123", predict_score: int = 55):
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.endpoint = v1.Endpoint(name=f"{PARENT}/endpoints/{endpoint_id}", display_name="lead-scoring")
        self.predict_score = predict_score
        self.predict_version: Optional[str] = None  # None: the version of the deployed model with most traffic
        self.fail_upload: Optional[grpc.StatusCode] = None
        self.endpoint_status: Optional[grpc.StatusCode] = None  # e.g. NOT_FOUND, PERMISSION_DENIED on GetEndpoint
        self.versions: dict[str, str] = {}  # model version id -> our version (its alias)
        self.deployed = 0
        self.server: Optional[grpc.Server] = None
        self.port = 0

    # -- the server ------------------------------------------------------------------------------
    def start(self) -> FakeVertex:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers(tuple(self._handlers()))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0)

    def names(self, *, reads: bool = False) -> list[str]:
        """RPCs in order; without `reads`, the Get* polls the SDK makes to refresh its objects are left out."""
        return [n for n, _ in self.calls if reads or not n.startswith("Get")]

    def requests(self, name: str) -> list[Any]:
        return [r for n, r in self.calls if n == name]

    @property
    def traffic(self) -> dict[str, int]:
        return dict(self.endpoint.traffic_split)

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        def unary(name: str, req_cls: Any, resp_ser: Callable[[Any], bytes], fn: Callable[[Any, Any], Any]):
            def recorded(request: Any, context: grpc.ServicerContext) -> Any:
                with self.lock:
                    self.calls.append((name, request))
                    return fn(request, context)

            return grpc.unary_unary_rpc_method_handler(
                recorded, request_deserializer=req_cls.deserialize, response_serializer=resp_ser
            )

        op = operations_pb2.Operation.SerializeToString
        return [
            grpc.method_handlers_generic_handler(
                "google.cloud.aiplatform.v1.EndpointService",
                {
                    "GetEndpoint": unary(
                        "GetEndpoint", v1.GetEndpointRequest, v1.Endpoint.serialize, self._get_endpoint
                    ),
                    "DeployModel": unary("DeployModel", v1.DeployModelRequest, op, self._deploy),
                    "UpdateEndpoint": unary(
                        "UpdateEndpoint", v1.UpdateEndpointRequest, v1.Endpoint.serialize, self._update
                    ),
                    "UndeployModel": unary("UndeployModel", v1.UndeployModelRequest, op, self._undeploy),
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.cloud.aiplatform.v1.ModelService",
                {
                    "UploadModel": unary("UploadModel", v1.UploadModelRequest, op, self._upload),
                    "GetModel": unary("GetModel", v1.GetModelRequest, v1.Model.serialize, self._get_model),
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.cloud.aiplatform.v1.PredictionService",
                {
                    "Predict": unary("Predict", v1.PredictRequest, v1.PredictResponse.serialize, self._predict),
                },
            ),
        ]

    # -- behaviour -------------------------------------------------------------------------------
    @staticmethod
    def _done(message: Any) -> operations_pb2.Operation:
        packed = any_pb2.Any()
        packed.Pack(type(message).pb(message))
        return operations_pb2.Operation(name=f"{PARENT}/operations/1", done=True, response=packed)

    def _get_endpoint(self, request: v1.GetEndpointRequest, context: grpc.ServicerContext) -> v1.Endpoint:
        if self.endpoint_status is not None:
            context.abort(self.endpoint_status, f"Endpoint `{request.name}` is not available")
        return self.endpoint

    def _upload(self, request: v1.UploadModelRequest, context: grpc.ServicerContext) -> Any:
        if self.fail_upload is not None:
            context.abort(self.fail_upload, "quota exceeded")
        version_id = str(len(self.versions) + 1)
        self.versions[version_id] = list(request.model.version_aliases)[0]
        return self._done(v1.UploadModelResponse(model=MODEL, model_version_id=version_id))

    def _get_model(self, request: v1.GetModelRequest, context: grpc.ServicerContext) -> v1.Model:
        version_id = request.name.rsplit("@", 1)[-1] if "@" in request.name else str(len(self.versions))
        return v1.Model(
            name=MODEL,
            version_id=version_id,
            display_name="lead-scorer",
            version_aliases=[self.versions.get(version_id, "")],
            supported_deployment_resources_types=[v1.Model.DeploymentResourcesType.DEDICATED_RESOURCES],
        )

    def _deploy(self, request: v1.DeployModelRequest, context: grpc.ServicerContext) -> Any:
        self.deployed += 1
        deployed = v1.DeployedModel(request.deployed_model)
        deployed.id = f"d{self.deployed}"
        self.endpoint.deployed_models.append(deployed)
        split = {(deployed.id if k == "0" else k): v for k, v in dict(request.traffic_split).items()}
        assert sum(split.values()) == 100, split
        self.endpoint.traffic_split = split
        return self._done(v1.DeployModelResponse(deployed_model=deployed))

    def _update(self, request: v1.UpdateEndpointRequest, context: grpc.ServicerContext) -> v1.Endpoint:
        assert list(request.update_mask.paths) == ["traffic_split"], request.update_mask
        split = dict(request.endpoint.traffic_split)
        assert sum(split.values()) == 100, split
        self.endpoint.traffic_split = split
        return self.endpoint

    def _undeploy(self, request: v1.UndeployModelRequest, context: grpc.ServicerContext) -> Any:
        gone = request.deployed_model_id
        if self.endpoint.traffic_split.get(gone, 0) and len(self.endpoint.traffic_split) > 1:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{gone} still has traffic")
        self.endpoint.deployed_models = [d for d in self.endpoint.deployed_models if d.id != gone]
        self.endpoint.traffic_split = dict(request.traffic_split) or {
            k: v for k, v in self.endpoint.traffic_split.items() if k != gone
        }
        return self._done(v1.UndeployModelResponse())

    def _predict(self, request: v1.PredictRequest, context: grpc.ServicerContext) -> v1.PredictResponse:
        split = dict(self.endpoint.traffic_split)
        top = max(split, key=lambda k: split[k])
        model = next(d.model for d in self.endpoint.deployed_models if d.id == top)
        version = self.predict_version or self.versions[model.rsplit("@", 1)[-1]]
        pb = v1.PredictResponse.pb()(deployed_model_id=top)
        for _ in request.instances:
            pb.predictions.add().struct_value.update(
                {"score": self.predict_score, "reasons": ["+x"], "model_version": version}
            )
        return v1.PredictResponse.wrap(pb)
