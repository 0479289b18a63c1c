#!/usr/bin/env bash
# MLflow tracking server for a team: runs and the model registry in PostgreSQL, artifacts in an
# object store (S3 or anything S3-compatible; set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
# MLFLOW_S3_ENDPOINT_URL in the environment). Clients then use COURSEPILOT_MLFLOW_URI=http://HOST:5000.
# Needs: pip install 'mlflow==3.17.2' 'psycopg[binary]' boto3
# MLFLOW_HOST defaults to 127.0.0.1; set it to the address your clients reach, behind your own auth proxy.
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?postgresql://USER:PASSWORD@HOST:5432/mlflow}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?s3://BUCKET/mlartifacts}"
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" --workers "${MLFLOW_WORKERS:-2}"
