#!/bin/sh
# MLflow tracking server: backend store and artifact root from the environment.
# `exec` replaces this shell, so `docker stop`'s SIGTERM reaches `mlflow server`, which
# passes it on to its uvicorn workers and exits once they have finished.
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql://mlflow:PASSWORD@db:5432/mlflow}"
: "${MLFLOW_ARTIFACT_ROOT:?set MLFLOW_ARTIFACT_ROOT, e.g. s3://BUCKET/mlflow}"

# Clients (the app) read and write artifacts in the artifact root themselves (--no-serve-artifacts):
# they need the bucket's credentials too, and the server never proxies model files.
exec mlflow server \
    --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
    --default-artifact-root "$MLFLOW_ARTIFACT_ROOT" \
    --no-serve-artifacts \
    --host 0.0.0.0 \
    --port "${PORT:-5000}" \
    --workers "${MLFLOW_WORKERS:-2}" \
    "$@"
