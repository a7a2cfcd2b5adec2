-- Local stack only (mounted into the TimescaleDB container's /docker-entrypoint-initdb.d/, run once
-- when its volume is first initialised): the MLflow server's own database, next to the app's.
-- MLflow keeps its tables and Alembic's alembic_version there, apart from the app's migrations.
CREATE DATABASE mlflow;
