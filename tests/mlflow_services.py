"""S3 (moto's standalone server) and a real MLflow server for the whole suite, started once per session.

The MLflow server keeps its tables in the `mlflow` schema of the app's own
test database (beside Django's tables in `public`), its artifacts in S3.
"""

import boto3
import psycopg
import pytest
from django.conf import settings

from tests.services import S3_ENV, mlflow_server, moto_s3

BUCKET = "smartmaint-test-artifacts"
MLFLOW_SCHEMA = "mlflow"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("moto")) as endpoint:
        boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs()).create_bucket(Bucket=BUCKET)
        yield endpoint


def _boto_kwargs():
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="session")
def mlflow_url(django_db_setup, django_db_blocker, s3_endpoint, tmp_path_factory):
    """An MLflow server whose backend store is the test database itself, schema `mlflow`."""
    from tests.conftest import server_dsn

    db = settings.DATABASES["default"]
    with psycopg.connect(server_dsn(db["NAME"]), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MLFLOW_SCHEMA}")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    backend = (
        f"postgresql+psycopg://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        f"?options=-csearch_path%3D{MLFLOW_SCHEMA}"
    )
    with mlflow_server(
        tmp_path_factory.mktemp("mlflow"),
        backend_store_uri=backend,
        artifact_root=f"s3://{BUCKET}/mlflow",
        s3_endpoint=s3_endpoint,
    ) as url:
        yield url


@pytest.fixture
def mlflow_settings(settings, mlflow_url, s3_endpoint, monkeypatch):
    """Point the app at the MLflow server; the client reads S3 settings from the environment like in production."""
    settings.MLFLOW_TRACKING_URI = mlflow_url
    settings.MLFLOW_REGISTRY_URI = ""
    settings.MLFLOW_UI_URL = mlflow_url
    for key, value in {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    from mlops import scoring

    scoring.clear_model_cache()
    yield settings
    scoring.clear_model_cache()
