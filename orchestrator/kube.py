"""Render a sweep as a KubeRay RayJob + ConfigMap and apply it: the only module that talks to Kubernetes.

The RayJob starts from `k8s/base/rayjob.yaml` (the manifest the kustomize overlays use too,
so both paths run the same cluster) and is adapted to one spec:

* the ConfigMap holds the resolved spec (profile and --set applied), mounted at /config;
* every container runs the spec's image;
* the worker group is sized from `resources_per_trial` and `search.max_concurrent`: one trial's
  CPUs and GPUs per worker (or `kubernetes.worker` settings), and as many workers at most as
  trials run at once; with GPUs it gets `nvidia.com/gpu` limits, the usual GPU taint
  tolerated and a GPU node selector.
"""
from __future__ import annotations

import copy
import math
import re
import sys
import time
from pathlib import Path
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

import orchestrator
from orchestrator.spec import SpecError

TEMPLATE = Path(orchestrator.__file__).resolve().parent.parent / "k8s" / "base" / "rayjob.yaml"
SPEC_MOUNT = "/config/spec.yaml"
GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"


class KubeError(RuntimeError):
    """The API server could not be reached, or refused; the message is one line."""


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: float | None = None            # per worker; default: one trial's
    gpus: int | None = None              # per worker; default: one trial's (rounded up)
    memory: str = "16Gi"
    max_replicas: int | None = None      # default: enough for search.max_concurrent trials
    node_selector: dict[str, str] = {"nvidia.com/gpu.present": "true"}   # applied with GPUs only


class KubernetesSettings(BaseModel):
    """The spec's `kubernetes:` section."""

    model_config = ConfigDict(extra="forbid")
    namespace: str = "surnn"
    image: str | None = None
    # Where the job keeps what must outlive its head pod (the services of k8s/base):
    mlflow_tracking_uri: str = "http://mlflow:5000"
    study_storage: str = "postgresql+psycopg2://postgres:5432/optuna"   # credentials: PGUSER/PGPASSWORD from a Secret
    storage_path: str = "/mnt/surnn/ray_results"                       # on the shared ReadWriteMany volume
    worker: WorkerSettings = WorkerSettings()


def settings(spec, namespace: str | None, image: str | None) -> KubernetesSettings:
    try:
        ks = KubernetesSettings(**(spec.kubernetes or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in ("kubernetes", *err["loc"]))
        raise SpecError(field, err["msg"]) from None
    ks = ks.model_copy(update={k: v for k, v in {"namespace": namespace, "image": image}.items() if v})
    if not ks.image:
        raise SpecError("kubernetes.image", "no container image: set kubernetes.image in the spec or pass --image")
    return ks


def job_name(spec) -> str:
    """A DNS-1123 name from the spec's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower()).strip("-")[:50]
    return name or "surnn-sweep"


def render(spec, ks: KubernetesSettings) -> list[dict]:
    """[ConfigMap, RayJob] for this spec."""
    name = job_name(spec)
    job = yaml.safe_load(TEMPLATE.read_text())
    job["metadata"].update(name=name, namespace=ks.namespace)
    job["spec"]["entrypoint"] = f"python -m orchestrator.sweep {SPEC_MOUNT} --resume"
    cluster = job["spec"]["rayClusterSpec"]
    pods = [job["spec"]["submitterPodTemplate"], cluster["headGroupSpec"]["template"],
            *(g["template"] for g in cluster["workerGroupSpecs"])]
    for pod in pods:
        pod.setdefault("metadata", {}).setdefault("labels", {})["surnn-sweep/job"] = name
        for c in pod["spec"]["containers"]:
            c["image"] = ks.image
            for env in c.get("env", []):
                if env["name"] == "MLFLOW_TRACKING_URI":
                    env["value"] = ks.mlflow_tracking_uri
    for vol in cluster["headGroupSpec"]["template"]["spec"]["volumes"]:
        if "configMap" in vol:
            vol["configMap"]["name"] = f"{name}-spec"
    cluster["workerGroupSpecs"] = [_worker_group(spec, ks, cluster["workerGroupSpecs"][0])]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"{name}-spec", "namespace": ks.namespace,
                               "labels": {"app.kubernetes.io/part-of": "surnn-sweep", "surnn-sweep/job": name}},
                  "data": {"spec.yaml": cluster_spec_yaml(spec, ks)}}
    return [config_map, job]


def cluster_spec_yaml(spec, ks: KubernetesSettings) -> str:
    """The resolved spec with its tracking pointed at the cluster's services, as the job reads it."""
    data = yaml.safe_load(spec.to_yaml())
    tracking = {k: v for k, v in data.get("tracking", {}).items() if k != "study_storage_env"}   # the cluster's own
    data["tracking"] = {**tracking, "uri": ks.mlflow_tracking_uri,
                        "study_storage": ks.study_storage, "storage_path": ks.storage_path}
    return yaml.safe_dump(data, sort_keys=False)


def _worker_group(spec, ks: KubernetesSettings, template: dict) -> dict:
    group = copy.deepcopy(template)
    trial = spec.resources_per_trial
    gpus = ks.worker.gpus if ks.worker.gpus is not None else math.ceil(trial.gpu)
    cpus = ks.worker.cpus if ks.worker.cpus is not None else trial.cpu
    per_worker = min(cpus / trial.cpu, gpus / trial.gpu if trial.gpu else math.inf)
    if per_worker < 1:
        raise SpecError("kubernetes.worker", f"a worker of {cpus:g} CPU and {gpus} GPU cannot hold one trial "
                        f"({trial.cpu:g} CPU, {trial.gpu:g} GPU)")
    needed = math.ceil(spec.search.max_concurrent / math.floor(per_worker))
    group["maxReplicas"] = ks.worker.max_replicas or needed
    group["minReplicas"] = 0
    group["replicas"] = min(group.get("replicas", 0), group["maxReplicas"])
    quantity = {"cpu": _cpu(cpus), "memory": ks.worker.memory}
    pod = group["template"]["spec"]
    if gpus:
        quantity["nvidia.com/gpu"] = str(gpus)
        group["groupName"] = "gpu"
        pod["nodeSelector"] = dict(ks.worker.node_selector)
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod["containers"][0]["resources"] = {"requests": dict(quantity), "limits": dict(quantity)}
    return group


def _cpu(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{int(cpus * 1000)}m"


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the spec in the ConfigMap) as readable `|` blocks."""


_BlockDumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def to_yaml(objects: list[dict]) -> str:
    return yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False)


# -------------------------------------------------------------------------------- applying

def api_client():
    """A client from $KUBECONFIG / ~/.kube/config, else the in-cluster service account."""
    from kubernetes import client, config

    try:
        config.load_kube_config()
    except Exception as first:   # noqa: BLE001 - the library raises several kinds; all mean "no usable kubeconfig"
        try:
            config.load_incluster_config()
        except config.ConfigException:
            msg = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
            raise KubeError(f"no usable kubeconfig ({msg}); set KUBECONFIG or run inside a cluster") from None
    return client.ApiClient()


def _call(what: str, fn, *args, **kwargs):
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        raise KubeError(f"{what}: the API server answered {exc.status} {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise KubeError(f"{what}: cannot reach the Kubernetes API server ({type(exc).__name__})") from None


def apply(objects: list[dict], namespace: str, api) -> None:
    """Create the ConfigMap, then the RayJob; if the RayJob is refused, remove the ConfigMap again."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        core.read_namespace(namespace, _request_timeout=10)
    except ApiException as exc:
        if exc.status == 404:
            raise KubeError(f"--namespace: namespace '{namespace}' does not exist (kubectl create namespace {namespace})") from None
        raise KubeError(f"namespace '{namespace}': the API server answered {exc.status} {exc.reason}") from None
    except Exception as exc:   # noqa: BLE001 - connection errors come in several urllib3 kinds
        raise KubeError(f"cannot reach the Kubernetes API server ({type(exc).__name__})") from None
    config_map, job = objects
    _call("ConfigMap", core.create_namespaced_config_map, namespace, config_map, _request_timeout=30)
    try:
        _call("RayJob", custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, job,
              _request_timeout=30)
    except KubeError:
        core.delete_namespaced_config_map(config_map["metadata"]["name"], namespace, _request_timeout=30)
        raise


def follow(name: str, run_name: str, namespace: str, api, out=sys.stdout, poll: float = 10.0) -> int:
    """Wait for the RayJob to end; print its status changes and where the results are."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    last = None
    while True:
        job = _call("RayJob", custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
        status = job.get("status", {})
        state = (status.get("jobDeploymentStatus"), status.get("jobStatus"))
        if state != last:
            print(f"rayjob/{name}: deployment {state[0] or '-'}, job {state[1] or '-'}", file=out, flush=True)
            last = state
        if state[0] in ("Complete", "Failed") or state[1] in ("SUCCEEDED", "FAILED", "STOPPED"):
            ok = state[1] == "SUCCEEDED"
            print(f"rayjob/{name} {'succeeded' if ok else 'ended: ' + str(status.get('message', state))}; "
                  f"the MLflow parent run is named '{run_name}' in the tracking server (kubectl logs -n {namespace} "
                  f"job/{name} shows its id)", file=out, flush=True)
            return 0 if ok else 1
        time.sleep(poll)


def run(spec, args) -> int:
    ks = settings(spec, args.namespace, args.image)
    objects = render(spec, ks)
    if args.dry_run:
        print(to_yaml(objects), end="")
        return 0
    api = api_client()
    apply(objects, ks.namespace, api)
    name = objects[1]["metadata"]["name"]
    print(f"created configmap/{name}-spec and rayjob/{name} in namespace {ks.namespace}", flush=True)
    return follow(name, spec.name, ks.namespace, api) if args.wait else 0

