"""The cluster's stack on one machine, for tests and for trying a sweep as it runs deployed.

`python -m orchestrator.devstack up [--dir DIR]` starts, in DIR (default: a new temporary
folder), what k8s/base deploys: a PostgreSQL 15 server on a loopback port (databases `mlflow`
and `optuna`), an `mlflow server` on it (`--serve-artifacts`, artifacts in DIR/artifacts), and
a Ray cluster of one head and two worker nodes, each with its own ports, temp dir and a custom
resource (`node_head`, `node_w1`, `node_w2`). It prints the URIs to pass to a sweep and writes
them to DIR/stack.json; `down --dir DIR` stops every process it started, by its own pid
(never `ray stop`, which would end every Ray process of the user), and `status --dir DIR`
says what is alive.

PostgreSQL refuses to run as root: as root, the server runs as the OS user `postgres` on a
folder that user owns. Where PostgreSQL is not installed, `PostgresMissing` says why (the
pytest fixture skips with that reason).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.procs import alive, kill_tree, reap, send, tree

STATE = "stack.json"
WORKERS = ("w1", "w2")


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class StackError(RuntimeError):
    """A service did not come up; the message names it and its log."""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise PostgresMissing(f"PostgreSQL is not installed ({name} not on PATH nor in /usr/lib/postgresql/*/bin)")


def _as_pg_user(cmd: list[str]) -> list[str]:
    """`cmd` run as the OS user `postgres` when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresMissing("running as root and runuser is missing: PostgreSQL cannot be started")
    return [runuser, "-u", "postgres", "--", *cmd]


def _wait(check, what: str, log: Path, timeout: float = 180.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    raise StackError(f"{what} did not come up (log {log}):\n{tail}")


@dataclass
class Stack:
    """A running stack: where each service listens and the pid that owns it."""

    root: str
    pg_port: int = 0
    pg_pid: int | None = None
    mlflow_port: int = 0
    mlflow_pid: int | None = None
    ray_port: int = 0
    ray_pids: dict = field(default_factory=dict)      # node name -> pid of its `ray start --block`
    pg_dir: str = ""          # PostgreSQL's folder: its own, under /tmp, so the postgres user can reach it
    pythonpath: str = ""      # the Ray nodes' PYTHONPATH: where trials import the spec's trainable from

    # -- addresses --------------------------------------------------------------------------
    def pg_url(self, db: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.pg_port}/{db}"

    @property
    def study_storage(self) -> str:
        return self.pg_url("optuna")

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.ray_port}"

    @property
    def path(self) -> Path:
        return Path(self.root)

    def save(self) -> None:
        (self.path / STATE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, root: str | Path) -> "Stack":
        return cls(**json.loads((Path(root) / STATE).read_text()))

    # -- PostgreSQL -------------------------------------------------------------------------
    def start_postgres(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not self.pg_dir:
            self.pg_dir = tempfile.mkdtemp(prefix="surnn-pg-", dir="/tmp")
        pg = Path(self.pg_dir)
        data, log = pg / "data", pg / "server.log"
        if not data.exists():
            if os.geteuid() == 0:
                shutil.chown(pg, "postgres", "postgres")
            self.pg_port = self.pg_port or free_port()
            _run(_as_pg_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                              "--no-sync", "--no-instructions"]), "initdb")
        self.pg_port = self.pg_port or free_port()
        opts = (f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -k {pg} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        _run(_as_pg_user([pg_ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"]),
             "pg_ctl start")
        self.pg_pid = int((data / "postmaster.pid").read_text().split()[0])
        self._create_databases("mlflow", "optuna")

    def _create_databases(self, *names: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            have = {row[0] for row in cur.fetchall()}
            for name in names:
                if name not in have:
                    cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()

    def stop_postgres(self) -> None:
        """Fast shutdown (SIGINT to the postmaster): clients are disconnected, data kept."""
        if alive(self.pg_pid):
            os.kill(self.pg_pid, signal.SIGINT)
            deadline = time.time() + 30
            while alive(self.pg_pid) and time.time() < deadline:
                time.sleep(0.1)
        self.pg_pid = None

    def remove_postgres(self) -> None:
        self.stop_postgres()
        if self.pg_dir:
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    # -- MLflow -----------------------------------------------------------------------------
    def start_mlflow(self, timeout: float = 240.0, wait: bool = True) -> None:
        self.mlflow_port = self.mlflow_port or free_port()
        log = self.path / "mlflow.log"
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        cmd = [mlflow, "server", "--backend-store-uri", self.pg_url("mlflow"), "--serve-artifacts",
               "--artifacts-destination", str(self.path / "artifacts"), "--host", "127.0.0.1",
               "--port", str(self.mlflow_port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                    start_new_session=True)
        self.mlflow_pid = proc.pid
        if wait:
            self.wait_mlflow(timeout)

    def wait_mlflow(self, timeout: float = 240.0) -> None:
        _wait(lambda: _http_ok(f"{self.tracking_uri}/health"), "mlflow server", self.path / "mlflow.log", timeout)

    def stop_mlflow(self) -> None:
        if self.mlflow_pid is not None:
            kill_tree(self.mlflow_pid)
        self.mlflow_pid = None

    # -- Ray --------------------------------------------------------------------------------
    def start_ray(self, worker_cpus: int = 1) -> None:
        self.ray_port = self.ray_port or free_port()
        self.ray_pids["head"] = self._ray_node("head", ["--head", "--port", str(self.ray_port), "--num-cpus", "0",
                                                        "--include-dashboard", "false",
                                                        "--ray-client-server-port", str(free_port())])
        logs = []
        for name in WORKERS:   # both workers join at once: they start in parallel
            logs.append(self._ray_node(name, ["--address", self.ray_address, "--num-cpus", str(worker_cpus)],
                                       wait=False))
        for name, (pid, log) in zip(WORKERS, logs):
            self.ray_pids[name] = pid
            self._wait_ray(name, log)

    def start_ray_worker(self, name: str, worker_cpus: int = 1) -> None:
        """(Re)start one worker node, e.g. after `kill_ray_node`."""
        pid, log = self._ray_node(name, ["--address", self.ray_address, "--num-cpus", str(worker_cpus)], wait=False)
        self.ray_pids[name] = pid
        self._wait_ray(name, log)

    def _wait_ray(self, name: str, log: Path) -> None:
        _wait(lambda: "Ray runtime started" in log.read_text(errors="replace"), f"ray node {name}", log)

    def _ray_node(self, name: str, args: list[str], wait: bool = True):
        log = self.path / f"ray-{name}.log"
        old = self.path / f"ray-{name}.tmp"
        if old.exists():   # a restarted node gets a fresh temp dir and log
            shutil.rmtree(old.read_text(), ignore_errors=True)
        if log.exists():
            log.rename(log.with_suffix(".log.old"))
        ray = str(Path(sys.executable).with_name("ray"))
        # A short temp dir: Ray's unix socket paths must stay under 108 characters.
        temp = Path(tempfile.mkdtemp(prefix=f"ray{name}-", dir="/tmp"))
        (self.path / f"ray-{name}.tmp").write_text(str(temp))
        ports = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"]
        cmd = [ray, "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
               "--temp-dir", str(temp), "--resources", json.dumps({f"node_{name}": 1}),
               *[a for flag in ports for a in (flag, str(free_port()))],
               "--min-worker-port", "0", "--max-worker-port", "0", *args]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
               "PYTHONPATH": self.pythonpath or os.environ.get("PYTHONPATH", ""),
               # a lost node is declared dead after about 3 s rather than Ray's 15-25 s
               "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
               "RAY_health_check_failure_threshold": "3",
               # the machine's memory is shared with whatever else runs there: Ray's monitor would
               # kill these tiny trials when another program fills it
               "RAY_memory_monitor_refresh_ms": "0"}
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                    start_new_session=True)
        if not wait:
            return proc.pid, log
        self._wait_ray(name, log)
        return proc.pid

    def kill_ray_node(self, name: str) -> int:
        """SIGKILL a node's raylet, its workers and agents at once (a lost machine); returns how many died."""
        procs = tree(self.ray_pids.get(name) or 0)
        send(procs[1:] + procs[:1], signal.SIGKILL)
        reap(self.ray_pids.get(name) or 0)
        self.ray_pids[name] = None
        return len(procs)

    def stop_ray(self) -> None:
        kill_tree(*[pid for pid in self.ray_pids.values() if pid])   # all nodes at once: one grace period
        for name in [*WORKERS, "head"]:
            self.ray_pids[name] = None
            tmp = self.path / f"ray-{name}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp.read_text(), ignore_errors=True)

    # -- all of it --------------------------------------------------------------------------
    def up(self) -> "Stack":
        try:
            self.start_postgres()
            self.start_mlflow(wait=False)   # its imports take a while: start Ray meanwhile
            self.start_ray()
            self.wait_mlflow()
        except BaseException:
            self.down()
            raise
        finally:
            self.save()
        return self

    def down(self) -> None:
        self.stop_ray()
        self.stop_mlflow()
        self.remove_postgres()
        self.save()

    def status(self) -> dict[str, bool]:
        return {"postgres": alive(self.pg_pid), "mlflow": alive(self.mlflow_pid),
                **{f"ray {n}": alive(p) for n, p in self.ray_pids.items()}}


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    if proc.returncode != 0:
        raise StackError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}")


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m orchestrator.devstack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--dir", help="the stack's folder (up: default a new temporary folder; down/status: required)")
    args = p.parse_args(argv)
    if args.action == "up":
        root = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="surnn-devstack-"))
        root.mkdir(parents=True, exist_ok=True)
        if (root / STATE).exists() and any(Stack.load(root).status().values()):
            print(f"error: --dir: a stack is already running in {root}", file=sys.stderr)
            return 2
        try:
            stack = Stack(str(root)).up()
        except (PostgresMissing, StackError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"stack up in {root}\n"
              f"  --tracking-uri {stack.tracking_uri}\n"
              f"  --ray-address {stack.ray_address}\n"
              f"  --set tracking.study_storage={stack.study_storage}\n"
              f"stop it with: python -m orchestrator.devstack down --dir {root}")
        return 0
    if not args.dir or not (Path(args.dir) / STATE).exists():
        print(f"error: --dir: no {STATE} in {args.dir!r}; give the folder that `up` printed", file=sys.stderr)
        return 2
    stack = Stack.load(args.dir)
    if args.action == "down":
        stack.down()
        print(f"stack in {args.dir} stopped")
        return 0
    for name, ok in stack.status().items():
        print(f"  {name}: {'up' if ok else 'down'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
