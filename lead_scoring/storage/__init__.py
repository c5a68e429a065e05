"""Versioned, verified model artifacts (local folder or GCS)."""
