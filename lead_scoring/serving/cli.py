"""`lead-scoring serve`: run the model server in the foreground (laptop, `stack up`, Vertex container)."""

from __future__ import annotations

import logging
from typing import Optional

import typer

from lead_scoring.serving.server import ServerConfig, run_server
from lead_scoring.settings import Profile, current_profile, model_server_settings, state_dir
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs

logger = logging.getLogger(__name__)


def serve(
    artifact: Optional[str] = typer.Option(
        None,
        "--artifact",
        help="Model version folder: a path, file:// or gs:// URI. Default: $AIP_STORAGE_URI "
        "(Vertex AI), else the PRODUCTION version of the local artifact store.",
    ),
    port: Optional[int] = typer.Option(None, "--port", help="HTTP port. Default: $AIP_HTTP_PORT or 8080."),
    host: Optional[str] = typer.Option(
        None, "--host", help="Bind address. Default: 127.0.0.1 (local), 0.0.0.0 (gcp/Vertex)."
    ),
    model_name: Optional[str] = typer.Option(
        None, "--model-name", help="Name in the V1/V2 URLs (default lead_scorer)."
    ),
    allow_swap: bool = typer.Option(
        False, "--allow-swap", help="Enable the local hot-swap and challenger admin routes."
    ),
    challenger: Optional[str] = typer.Option(
        None,
        "--challenger",
        help="Also serve this version of the same artifact store as <model-name>_challenger (shadow scoring).",
    ),
) -> None:
    """Serve the lead scoring model (KServe V1 + V2 + Vertex AI routes) until interrupted."""
    profile = current_profile()
    uri = artifact or model_server_settings().vertex_storage_uri or _local_production_uri(profile)
    config = ServerConfig.from_env(
        profile, port=port, host=host, model_name=model_name, allow_swap=allow_swap, challenger=challenger
    )
    raise typer.Exit(run_server(uri, config))


def _local_production_uri(profile: Profile) -> str:
    repo = ArtifactRepository(LocalBlobs(state_dir() / "artifacts"), profile)
    version = repo.production_version()
    if version is None:
        raise typer.BadParameter(
            "no --artifact given and no PRODUCTION model in the local artifact store", param_hint="--artifact"
        )
    return repo.blobs.uri(f"models/{version}")
