"""`orchestrator.submit` for Kubernetes: the rendered RayJob and ConfigMap, and bad input."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from k8s_checks import SCHEMAS, core_errors, crd_errors

ROOT = Path(__file__).resolve().parents[2]
LRA = ROOT / "search_spaces" / "lra.yaml"
GPU = "nvidia.com/gpu"


def submit(*args, env=None, timeout=120):
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "orchestrator.submit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rendered(*overrides: str) -> tuple[dict, dict]:
    args = [str(LRA), "--profile", "local", "--dry-run"]
    for item in overrides:
        args += ["--set", item]
    proc = submit(*args)
    assert proc.returncode == 0, proc.stderr
    config_map, job = yaml.safe_load_all(proc.stdout)
    return config_map, job


def pods(job: dict) -> list[dict]:
    cluster = job["spec"]["rayClusterSpec"]
    return [job["spec"]["submitterPodTemplate"]["spec"], cluster["headGroupSpec"]["template"]["spec"],
            *(g["template"]["spec"] for g in cluster["workerGroupSpecs"])]


@pytest.fixture(scope="module")
def gpu_job():
    return rendered("resources_per_trial.gpu=1", "resources_per_trial.cpu=4", "search.max_concurrent=6")


@pytest.mark.skipif(not SCHEMAS.exists(), reason="../shared/k8s-schemas (the KubeRay CRDs) is not beside this clone")
def test_rendered_objects_validate_strictly(gpu_job):
    config_map, job = gpu_job
    assert crd_errors(job) == []
    assert core_errors(config_map) == []


def test_gpu_trials_get_a_gpu_worker_group_sized_for_the_concurrency(gpu_job):
    _, job = gpu_job
    cluster = job["spec"]["rayClusterSpec"]
    (group,) = cluster["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits[GPU] == "1" and group["maxReplicas"] == 6 and group["minReplicas"] == 0
    assert cluster["enableInTreeAutoscaling"] is True
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in group["template"]["spec"]["tolerations"]
    assert group["template"]["spec"]["nodeSelector"]
    head = cluster["headGroupSpec"]
    assert GPU not in json.dumps(head["template"]) and head["rayStartParams"]["num-gpus"] == "0"


def test_cpu_trials_get_no_gpus():
    _, job = rendered()
    assert GPU not in json.dumps(job)
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert "tolerations" not in group["template"]["spec"] and group["maxReplicas"] == 1   # 4-CPU workers, 2 trials of 1 CPU


def test_the_job_runs_the_spec_it_carries(gpu_job):
    config_map, job = gpu_job
    assert job["spec"]["entrypoint"] == "python -m orchestrator.sweep /config/spec.yaml --resume"
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volume = next(v for v in head["volumes"] if "configMap" in v)
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert volume["configMap"]["name"] == config_map["metadata"]["name"] and mount["mountPath"] == "/config"
    from orchestrator.spec import parse_spec

    spec = parse_spec(yaml.safe_load(config_map["data"]["spec.yaml"]))
    assert spec.resources_per_trial.gpu == 1 and spec.tasks[0].name == "listops"
    assert spec.tracking.uri == "http://mlflow:5000" and spec.tracking.study_storage.startswith("postgresql")


def test_shared_storage_secrets_by_reference_and_non_root(gpu_job):
    config_map, job = gpu_job
    spec = yaml.safe_load(config_map["data"]["spec.yaml"])
    claims = []
    for pod in pods(job)[1:]:   # head and workers
        claim = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        (name,) = claim
        claims.append(claim[name])
        assert spec["tracking"]["storage_path"].startswith(mounts[name])
    assert len(set(claims)) == 1
    for pod in pods(job):
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"] and c["resources"]["limits"]
            for env in c.get("env", []):
                if "PASSWORD" in env["name"] or "USER" in env["name"]:
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"]


def test_cluster_spec_takes_the_cluster_study_storage_and_no_password():
    env = {"SURNN_STUDY_STORAGE": "postgresql://u:Pl4nted@laptop/optuna"}
    proc = submit(str(LRA), "--profile", "local", "--dry-run", "--set", "tracking.study_storage_env=SURNN_STUDY_STORAGE",
                  "--set", "training.cache_dir=s3://r:Pl4nted@store/cache", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Pl4nted" not in proc.stdout + proc.stderr
    from orchestrator.spec import parse_spec

    config_map, _ = yaml.safe_load_all(proc.stdout)
    spec = parse_spec(yaml.safe_load(config_map["data"]["spec.yaml"]))
    assert spec.tracking.study_storage_env is None and spec.tracking.study_storage.startswith("postgresql+psycopg2://postgres")


def test_spec_without_image_is_refused():
    proc = submit(str(LRA), "--profile", "local", "--set", "kubernetes.image=null", "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: kubernetes.image: no container image: set kubernetes.image "
                                   "in the spec or pass --image")


class FakeApiServer(BaseHTTPRequestHandler):
    """A loopback HTTP server answering the few Kubernetes API calls submit makes, recording them."""

    requests: list[tuple[str, str]] = []
    namespaces = {"surnn"}
    refuse_rayjob = True

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.requests.append(("GET", self.path))
        ns = self.path.rstrip("/").split("/")[-1]
        if self.path.startswith("/api/v1/namespaces/") and ns in self.namespaces:
            return self._reply(200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}})
        self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append(("POST", self.path))
        if "rayjobs" in self.path and self.refuse_rayjob:
            return self._reply(422, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422})
        self._reply(201, {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}})

    def do_DELETE(self):
        self.requests.append(("DELETE", self.path))
        self._reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def log_message(self, *args):
        pass


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": server}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        "users": [{"name": "t", "user": {"token": "placeholder"}}]}))
    return path


@pytest.fixture
def api_server():
    FakeApiServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["missing-kubeconfig", "unreachable"])
def test_no_cluster_is_one_line_and_nonzero(tmp_path, case):
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": ""}
    if case == "missing-kubeconfig":
        env["KUBECONFIG"] = str(tmp_path / "nope")
        expected = "no usable kubeconfig"
    else:
        env["KUBECONFIG"] = str(kubeconfig(tmp_path, f"http://127.0.0.1:{_free_port()}"))
        expected = "cannot reach the Kubernetes API server"
    proc = submit(str(LRA), "--profile", "local", env=env)
    assert proc.returncode == 3
    assert expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_missing_namespace_applies_nothing(tmp_path, api_server):
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig(tmp_path, api_server))}
    proc = submit(str(LRA), "--profile", "local", "--namespace", "absent", env=env)
    assert proc.returncode == 3
    assert "namespace 'absent' does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert [m for m, _ in FakeApiServer.requests] == ["GET"]


def test_refused_rayjob_takes_its_configmap_back(tmp_path, api_server):
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig(tmp_path, api_server))}
    proc = submit(str(LRA), "--profile", "local", env=env)
    assert proc.returncode == 3 and "RayJob: the API server answered 422" in proc.stderr
    methods = [(m, p.split("?")[0]) for m, p in FakeApiServer.requests]
    assert methods == [("GET", "/api/v1/namespaces/surnn"),
                       ("POST", "/api/v1/namespaces/surnn/configmaps"),
                       ("POST", "/apis/ray.io/v1/namespaces/surnn/rayjobs"),
                       ("DELETE", "/api/v1/namespaces/surnn/configmaps/lra-surnn-spec")]


class RayJobStatusServer(FakeApiServer):
    """Answers GET of a RayJob with the next status of a scripted sequence."""

    statuses = [{"jobDeploymentStatus": "Initializing"},
                {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
                {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}]

    def do_GET(self):
        self.requests.append(("GET", self.path))
        i = min(sum(m == "GET" for m, _ in self.requests) - 1, len(self.statuses) - 1)
        self._reply(200, {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "lra-surnn"},
                          "status": self.statuses[i]})


def test_wait_follows_the_rayjob_to_its_end(tmp_path, capsys):
    from kubernetes import client

    from orchestrator.kube import follow

    RayJobStatusServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RayJobStatusServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = client.Configuration()
        config.host = f"http://127.0.0.1:{server.server_address[1]}"
        status = follow("lra-surnn", "lra-surnn", "surnn", client.ApiClient(config), poll=0.01)
    finally:
        server.shutdown()
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[:3] == ["rayjob/lra-surnn: deployment Initializing, job -",
                       "rayjob/lra-surnn: deployment Running, job RUNNING",
                       "rayjob/lra-surnn: deployment Complete, job SUCCEEDED"]
    assert "succeeded" in out[3] and "MLflow parent run is named 'lra-surnn'" in out[3]
