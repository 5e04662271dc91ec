"""How the sweep's driver talks to an MLflow server: quiet offline defaults, credentials taken out
of the URI into the environment MLflow reads, and which errors mean the server is away (hold the
write and retry) rather than that it refused the write (drop it).
"""
from __future__ import annotations

import os


def is_outage(exc: BaseException) -> bool:
    """The server could not be reached or answered 5xx (retry), as opposed to a refused write (drop)."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                        TimeoutError)):
        return True
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        text = str(exc)
        return ("Max retries exceeded" in text or "Connection" in text or "failed with exception" in text
                or exc.get_http_status_code() >= 500)
    return False


def configure_mlflow_env(tracking_uri: str | None = None) -> str | None:
    """Quiet, offline defaults for MLflow on the driver; returns `tracking_uri` without credentials.

    An `http://user:password@host` URI hands its user and password to MLflow through
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (which MLflow reads itself), so the URI
    that is kept and passed around holds no secret.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A write that cannot reach the server fails within seconds, and the tracker's outbox holds it
    # and retries (MLflow's own default retries block for about two minutes).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return tracking_uri
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(tracking_uri)
    if parts.username is None:
        return tracking_uri
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))

