"""The MLOps tests use the API client fixtures too; S3 and MLflow come from tests/mlflow_services.py."""

from tests.api.conftest import anon, clear_cache, make_key, user_client  # noqa: F401  (shared fixtures)
