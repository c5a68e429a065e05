"""The model artifact store as a Dagster resource: a local folder or a GCS bucket."""

from __future__ import annotations

from typing import Optional

import dagster as dg
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from pydantic import Field

from lead_scoring.settings import Profile
from lead_scoring.storage.artifacts import ArtifactRepository, GcsBlobs, LocalBlobs


class ModelStore(dg.ConfigurableResource):
    """Where versioned model artifacts live; subclasses choose the backend. `profile` says where the signing
    key may come from (`storage.artifacts.signing_key`: gcp never generates one)."""

    profile: Profile = Field(default=Profile.LOCAL, description="the profile this store serves")

    def repository(self) -> ArtifactRepository:
        raise NotImplementedError("use LocalModelStore or GcsModelStore")

    def describe(self) -> str:
        raise NotImplementedError("use LocalModelStore or GcsModelStore")


class LocalModelStore(ModelStore):
    """Artifacts in a local directory (the `local` profile)."""

    root: str = Field(description="directory holding models/<version>/")

    def repository(self) -> ArtifactRepository:
        return ArtifactRepository(LocalBlobs(self.root), self.profile)

    def describe(self) -> str:
        return self.root


class GcsModelStore(ModelStore):
    """Artifacts in gs://bucket/prefix/models/<version>/ (the `gcp` profile)."""

    profile: Profile = Field(default=Profile.GCP, description="the profile this store serves")
    bucket: str = Field(description="GCS bucket")
    prefix: str = Field(default="lead-scoring", description="object prefix inside the bucket")
    project: Optional[str] = Field(default=None, description="GCP project (defaults to the ADC project)")
    endpoint: Optional[str] = Field(
        default=None, description="API endpoint override, e.g. a gcp-storage-emulator at http://127.0.0.1:9023"
    )

    def client(self) -> storage.Client:
        if self.endpoint:
            return storage.Client(
                project=self.project or "local-test",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.endpoint},
            )
        return storage.Client(project=self.project)

    def repository(self) -> ArtifactRepository:
        return ArtifactRepository(GcsBlobs(self.client(), self.bucket, self.prefix), self.profile)

    def describe(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"
