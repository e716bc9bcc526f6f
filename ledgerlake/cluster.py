"""``ledgerlake cluster start|stop|status``: a Spark standalone cluster (a master and a worker) on this machine.

Both daemons run from the installed PySpark (``bin/spark-class``), so the cluster's Spark is
the jobs' Spark. They listen on loopback only (``--host``; the web UIs follow
``SPARK_LOCAL_IP``) and require Spark's RPC authentication: a secret generated at the first
start, kept in the cluster folder readable by its owner only, reaches the daemons through
their environment and every driver through ``cluster_conf`` (``ledgerlake.session``), never
through a command line. Executors get it from their worker, as Spark does.

Jobs then run there with ``--master spark://127.0.0.1:7077`` (or ``LEDGERLAKE_SPARK_MASTER``),
with ``ledgerlake <command>`` and ``spark-submit`` alike; executors are JVMs of their own and
need nothing of the project but the jars the driver ships (no Python runs in them: every
transformation is a Spark SQL expression). The cluster's folder (``<cache>/cluster``, or
``--dir``) holds the process ids, the logs, the master's URL and the secret.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerlake.extensions import cache_dir, spark_home

LOOPBACK = "127.0.0.1"
DEFAULT_PORT, DEFAULT_WEBUI_PORT, DEFAULT_WORKER_WEBUI_PORT = 7077, 8080, 8081
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
SECRET_ENV = "_SPARK_AUTH_SECRET"     # the variable Spark's daemons read their secret from


def default_dir() -> Path:
    return Path(os.environ.get("LEDGERLAKE_CLUSTER_DIR") or cache_dir() / "cluster")


@dataclass(frozen=True)
class Cluster:
    """The files of a cluster started by this command."""

    folder: Path

    @property
    def secret_file(self) -> Path:
        return self.folder / "secret"

    @property
    def url(self) -> str | None:
        path = self.folder / "master-url"
        return path.read_text().strip() if path.is_file() else None

    @property
    def webui(self) -> str | None:
        path = self.folder / "master-webui"
        return path.read_text().strip() if path.is_file() else None

    def pid(self, role: str) -> int | None:
        path = self.folder / f"{role}.pid"
        if not path.is_file():
            return None
        pid = int(path.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def running(self) -> bool:
        return self.pid("master") is not None and self.pid("worker") is not None

    def secret(self) -> str:
        """The cluster's secret, generated (owner-only) if there is none yet."""
        if not self.secret_file.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
        return self.secret_file.read_text().strip()


def cluster_conf(master: str | None, folder: Path | None = None) -> dict[str, str]:
    """Settings a driver needs to join the cluster at ``master`` if this command started it (else none)."""
    cluster = Cluster(folder or default_dir())
    if not master or master != cluster.url or not cluster.secret_file.is_file():
        return {}
    return {"spark.authenticate": "true", "spark.authenticate.secret": cluster.secret(),
            "spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK}


def _launch(cluster: Cluster, role: str, args: list[str]) -> int:
    env = {**os.environ, "SPARK_LOCAL_IP": LOOPBACK, SECRET_ENV: cluster.secret()}
    log_file = (cluster.folder / f"{role}.log").open("ab")
    proc = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args,
                             "--properties-file", str(cluster.folder / "daemon.conf")],
                            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    (cluster.folder / f"{role}.pid").write_text(str(proc.pid))
    return proc.pid


def master_state(webui: str, timeout: float = 2.0) -> dict[str, Any]:
    """The master's own JSON status page."""
    with urllib.request.urlopen(f"{webui}/json/", timeout=timeout) as reply:  # noqa: S310 - loopback URL of ours
        return dict(json.load(reply))


def start(cluster: Cluster, port: int = DEFAULT_PORT, webui_port: int = DEFAULT_WEBUI_PORT,
          worker_webui_port: int = DEFAULT_WORKER_WEBUI_PORT, cores: int | None = None, memory: str = "4g",
          timeout: float = 120.0) -> str:
    """Start the master and one worker (unless running) and wait until the worker has registered; the URL."""
    if cluster.running():
        return str(cluster.url)
    stop(cluster)                             # a half-started or crashed cluster: clean up first
    cluster.folder.mkdir(parents=True, exist_ok=True)
    (cluster.folder / "daemon.conf").write_text("spark.authenticate true\n")
    url, webui = f"spark://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{webui_port}"
    _launch(cluster, "master", [MASTER_CLASS, "--host", LOOPBACK, "--port", str(port),
                                "--webui-port", str(webui_port)])
    _launch(cluster, "worker", [WORKER_CLASS, url, "--host", LOOPBACK, "--cores", str(cores or os.cpu_count() or 2),
                                "--memory", memory, "--webui-port", str(worker_webui_port),
                                "--work-dir", str(cluster.folder / "work")])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.running():
            stop(cluster)
            raise ClusterError(f"the cluster stopped while starting; see {cluster.folder}/master.log and worker.log")
        try:
            if master_state(webui).get("aliveworkers", 0) >= 1:
                (cluster.folder / "master-url").write_text(url)
                (cluster.folder / "master-webui").write_text(webui)
                return url
        except OSError:
            pass
        time.sleep(0.5)
    stop(cluster)
    raise ClusterError(f"no worker registered within {timeout:.0f}s; see {cluster.folder}/master.log and worker.log")


def stop(cluster: Cluster, timeout: float = 30.0) -> list[str]:
    """Stop the worker, then the master; the roles that were running."""
    stopped = []
    for role in ("worker", "master"):
        pid = cluster.pid(role)
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while cluster.pid(role) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            if cluster.pid(role) is not None:
                os.killpg(pid, signal.SIGKILL)
            stopped.append(role)
        (cluster.folder / f"{role}.pid").unlink(missing_ok=True)
    for name in ("master-url", "master-webui"):
        (cluster.folder / name).unlink(missing_ok=True)
    return stopped


def status(cluster: Cluster) -> dict[str, Any] | None:
    """The master's status (workers, cores, memory, applications), or None when the cluster is not running."""
    if not cluster.running() or cluster.webui is None:
        return None
    try:
        return master_state(cluster.webui)
    except OSError:
        return None


class ClusterError(RuntimeError):
    """The cluster did not start."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake cluster",
        description="A Spark standalone cluster on this machine (master and worker on loopback, RPC "
                    "authentication on), from the installed PySpark. Jobs run on it with --master URL "
                    "or LEDGERLAKE_SPARK_MASTER=URL.",
        epilog="exit status: 0 done (status: running), 1 status: not running, 3 the cluster did not start")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=None,
                        help="the cluster's folder: pids, logs, URL, secret (env LEDGERLAKE_CLUSTER_DIR; "
                             "default ~/.cache/ledgerlake/cluster)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="master port (default 7077)")
    parser.add_argument("--webui-port", type=int, default=DEFAULT_WEBUI_PORT, help="master web UI (default 8080)")
    parser.add_argument("--worker-webui-port", type=int, default=DEFAULT_WORKER_WEBUI_PORT,
                        help="worker web UI (default 8081)")
    parser.add_argument("--cores", type=int, default=None, help="the worker's cores (default: all)")
    parser.add_argument("--memory", default="4g", help="the worker's memory for executors (default 4g)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cluster = Cluster(args.dir or default_dir())
    if args.action == "start":
        try:
            url = start(cluster, args.port, args.webui_port, args.worker_webui_port, args.cores, args.memory)
        except ClusterError as exc:
            print(f"ledgerlake cluster: {exc}", file=sys.stderr)
            return 3
        print(f"cluster running: master {url}, web UI {cluster.webui}\n"
              f"run jobs there with --master {url} (or export LEDGERLAKE_SPARK_MASTER={url})")
        return 0
    if args.action == "stop":
        stopped = stop(cluster)
        print(f"cluster stopped ({', '.join(stopped)})" if stopped else "cluster: not running")
        return 0
    state = status(cluster)
    if state is None:
        print("cluster: not running")
        return 1
    print(f"cluster running: master {cluster.url}, web UI {cluster.webui}\n"
          f"workers alive {state.get('aliveworkers', 0)}, cores {state.get('coresused', 0)}/{state.get('cores', 0)} "
          f"in use, memory {state.get('memoryused', 0)}/{state.get('memory', 0)} MiB in use, "
          f"applications running {len(state.get('activeapps', []))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
