"""Submit a sweep to a Ray cluster that already runs, through the Ray Jobs API.

The job ships a staged working directory: the spec (as `spec.yaml`) and this project's
packages, so the cluster runs the code that submitted it. Its entrypoint is
`python -m orchestrator.sweep spec.yaml ... --resume`: a re-submitted job continues the same
sweep. Paths in the spec are the cluster's: give `tracking.uri` as an MLflow server (or an
absolute path the head can write), and an absolute `tracking.storage_path`.
"""
from __future__ import annotations

import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orchestrator

ROOT = Path(orchestrator.__file__).resolve().parent.parent
PACKAGES = ("surnn", "orchestrator")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
PARENT_RUN = re.compile(r"MLflow parent run (\w+)")


class SubmitError(RuntimeError):
    """A cluster could not be reached or refused the job; the message is one line."""


def stage(spec_path: Path, folder: Path, include: list[Path] = ()) -> Path:
    """Copy the spec, the project's packages and `include` (e.g. a custom trainable) into `folder`."""
    shutil.copyfile(spec_path, folder / "spec.yaml")
    for extra in include:
        if not extra.exists():
            raise SubmitError(f"--include: no such file or folder: {extra}")
        copy = shutil.copytree if extra.is_dir() else shutil.copyfile
        copy(extra, folder / extra.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, folder / pkg, ignore=ignore)
    return folder


def entrypoint(profile: str | None, overrides: list[str], tracking_uri: str | None) -> str:
    args = ["python", "-m", "orchestrator.sweep", "spec.yaml", "--resume"]
    if profile:
        args += ["--profile", profile]
    for item in overrides:
        args += ["--set", item]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    return shlex.join(args)


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SubmitError(f"--ray-address: cannot reach a Ray job server at {address} ({first})") from None


def submit(address: str, spec_path: Path, profile: str | None, overrides: list[str],
           tracking_uri: str | None, wait: bool, include: list[Path] = (), out=sys.stdout) -> int:
    """Submit; with `wait`, follow the job to its end. Returns the process exit status."""
    client = _client(address)
    with tempfile.TemporaryDirectory(prefix="surnn-job-") as tmp:
        folder = stage(spec_path, Path(tmp), include)
        command = entrypoint(profile, overrides, tracking_uri)
        job_id = client.submit_job(entrypoint=command, runtime_env={"working_dir": str(folder)},
                                   metadata={"spec": spec_path.name})
    print(f"submitted Ray job {job_id} to {address}: {command}", file=out, flush=True)
    if not wait:
        return 0
    status = follow(client, job_id, out)
    return 0 if status == "SUCCEEDED" else 1


def follow(client, job_id: str, out, poll: float = 2.0) -> str:
    """Print the job's new log lines until it ends; then where its MLflow parent run is."""
    printed = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        lines = logs.splitlines()
        for line in lines[printed:]:
            print(line, file=out)
        printed = len(lines)
        if status in TERMINAL:
            break
        time.sleep(poll)
    runs = PARENT_RUN.findall(logs)
    where = f"; MLflow parent run(s): {', '.join(runs)}" if runs else ""
    print(f"job {job_id} {status}{where}", file=out, flush=True)
    return status
