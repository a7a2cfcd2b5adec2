"""`.env.example` documents every variable the settings read, and nothing else."""

import re

from tests.conftest import ROOT

# Read by libraries (MLflow, boto3) from the environment, not by our settings.
LIBRARY_VARIABLES = {
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
}


def test_env_example_lists_exactly_the_variables_settings_read():
    settings_source = (ROOT / "smartmaint" / "settings.py").read_text()
    read = set(re.findall(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"", settings_source))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert read, "no env reads found: the pattern no longer matches settings.py"
    assert read - documented == set(), "read by settings but missing from .env.example"
    assert documented - read - LIBRARY_VARIABLES == set(), "documented in .env.example but never read"
    assert documented >= LIBRARY_VARIABLES
