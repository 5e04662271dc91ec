# surnn-sweep container image: Ray 2.60 (Python 3.11, CUDA) + torch 2.13.0 (CUDA build) +
# this project, run as the Ray image's non-root user `ray` (uid 1000, gid 100). One image for
# the Ray head, the Ray workers, the RayJob submitter and the MLflow server (k8s/).
#
# Build and push (from the repository root; needs a container engine and the internet):
#
#   docker build -t REGISTRY/surnn/surnn-sweep:0.1.0 .
#   docker push REGISTRY/surnn/surnn-sweep:0.1.0
#   # then name it in k8s/overlays/gpu/kustomization.yaml (images: newName/newTag), e.g.
#   #   cd k8s/overlays/gpu && kustomize edit set image surnn-sweep=REGISTRY/surnn/surnn-sweep:0.1.0
#
# CPU variant for a kind/minikube test cluster (k8s/overlays/dev), much smaller:
#
#   docker build -t surnn-sweep:0.1.0-cpu \
#       --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
#       --build-arg REQUIRE_CUDA_TORCH=0 .
#   kind load docker-image surnn-sweep:0.1.0-cpu        # or: minikube image load surnn-sweep:0.1.0-cpu
#
# Base image tag: Ray's images are tagged {ray version}-py{XY}-{platform}, platform being `cpu`,
# `cuXXX` (a CUDA version, e.g. cu128) or `gpu` (an alias of the default CUDA one). cu128 is
# assumed to exist for 2.60.0: check with `docker manifest inspect rayproject/ray:2.60.0-py311-cu128`
# and fall back to `-gpu` (or another cuXXX that your nodes' NVIDIA driver supports).
#
# torch: PyPI's Linux x86_64 wheel of torch 2.13.0 is the CUDA build (it brings its own CUDA
# runtime as nvidia-* wheels; the node only needs a recent NVIDIA driver). The build fails if
# what got installed is a CPU build, unless REQUIRE_CUDA_TORCH=0. To pick a CUDA flavour, set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 (or cu126, cu130, ...).
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cu128
FROM ${RAY_IMAGE}

ARG TORCH_INDEX_URL=""
ARG REQUIRE_CUDA_TORCH=1

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true

# The Ray image's Python (/home/ray/anaconda3) belongs to `ray`: install as that user, no root.
USER 1000:100
WORKDIR /home/ray/surnn-sweep

# 1. torch first, pinned exactly (the project's own install then adds nothing bigger).
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0" \
 && python -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda); \
sys.exit(0 if torch.version.cuda or '${REQUIRE_CUDA_TORCH}' == '0' else \
'torch is a CPU build: set TORCH_INDEX_URL to a CUDA index')"

# 2. The project's dependencies, read from pyproject.toml (a layer that survives code changes),
#    plus what the cluster needs beyond a laptop: psycopg2 (MLflow's backend store and the
#    Optuna study on PostgreSQL) and boto3 (the MLflow server's S3 artifact store).
COPY --chown=1000:100 pyproject.toml README.md ./
RUN python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt "psycopg2-binary==2.9.13" "boto3==1.44.8" \
 && rm /tmp/requirements.txt

# 3. The project itself (not editable: the code lives in site-packages, the same on every node).
#    setup.py builds the sparse inference kernel (plain C) if the image has a C compiler; without
#    one, surnn.sparse runs its slower PyTorch path (the last line of this step says which).
COPY --chown=1000:100 setup.py ./
COPY --chown=1000:100 surnn ./surnn
COPY --chown=1000:100 orchestrator ./orchestrator
COPY --chown=1000:100 search_spaces ./search_spaces
RUN pip install --no-deps . \
 && rm -rf build *.egg-info \
 && python -m orchestrator.sweep --help > /dev/null \
 && python -c "import psycopg2, boto3, ray, optuna, mlflow, surnn.train; \
assert ray.__version__ == '2.60.0', ray.__version__" \
 && python -c "from surnn.sparse import native; print('sparse kernel:', native.load() or native.load_error())"

# Numeric, so that the kubelet can check runAsNonRoot against the image as well.
USER 1000:100
