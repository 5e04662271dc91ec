"""Submit a sweep to a cluster: `python -m orchestrator.submit SPEC [--profile NAME] ...`.

Two targets, one spec:
* Kubernetes (the default): renders a KubeRay RayJob, which brings its own RayCluster, and a
  ConfigMap holding the spec, sized from `resources_per_trial` and `search.max_concurrent` and
  the spec's `kubernetes:` section; applies them with the Kubernetes API (kubeconfig or
  in-cluster); `--wait` follows the job to its end. `--dry-run` prints the YAML only.
* `--ray-address http://HOST:8265`: a Ray cluster that already runs, through the Ray Jobs API.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.spec import SpecError, load_spec
from orchestrator.sweep import spec_parser

EPILOG = """examples:
  python -m orchestrator.submit search_spaces/lra.yaml --dry-run            # print the RayJob + ConfigMap
  python -m orchestrator.submit search_spaces/lra.yaml --namespace sweeps --wait
  python -m orchestrator.submit search_spaces/lra.yaml --profile local --ray-address http://127.0.0.1:8265 --wait

exit status: 0 submitted (with --wait: succeeded), 1 the job failed, 2 bad spec or input, 3 cluster unreachable or refused.
"""


def build_parser() -> argparse.ArgumentParser:
    p = spec_parser("python -m orchestrator.submit", __doc__, EPILOG)
    p.add_argument("--namespace", help="Kubernetes namespace (default: the spec's kubernetes.namespace)")
    p.add_argument("--image", help="container image (default: the spec's kubernetes.image)")
    p.add_argument("--dry-run", action="store_true", help="print the rendered objects; apply nothing")
    p.add_argument("--wait", action="store_true", help="follow the job to its end and say where its MLflow parent run is")
    p.add_argument("--ray-address", help="submit to this running Ray cluster's job server instead of Kubernetes")
    p.add_argument("--tracking-uri", help="MLflow tracking URI the job logs to (default: the spec's)")
    p.add_argument("--include", action="append", default=[], type=Path, metavar="PATH",
                   help="with --ray-address: also ship this file or folder (e.g. a custom trainable module)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(args.spec, args.profile, args.overrides)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.ray_address:
        from orchestrator.jobs import SubmitError, submit

        try:
            return submit(args.ray_address, Path(args.spec), args.profile, args.overrides, args.tracking_uri,
                          args.wait, args.include)
        except SubmitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
    from orchestrator.kube import KubeError, run

    try:
        return run(spec, args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
