-- Run once by the postgres image on an empty data directory, as POSTGRES_USER on POSTGRES_DB
-- (mlflow). MLflow and Optuna both keep an `alembic_version` table, so the Optuna studies
-- (the spec's tracking.study_storage) get a database of their own.
CREATE DATABASE optuna;
