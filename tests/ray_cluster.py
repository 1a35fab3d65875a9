"""A real two-node Ray cluster on loopback, for tests of ``hydra/launcher=ray_cluster``.

Use the ``ray_cluster`` fixture (session-scoped; import it into a test module) or the
``start_ray_cluster(root)`` context manager. Both give a :class:`RayCluster`.

The head node has ``--num-cpus=0``, so every task that asks for a CPU runs on the one worker node.
The worker is started from its own folder (``root/worker_cwd``), never the test's or launcher's
working directory, and both nodes keep their session files under ``root`` (``--temp-dir``), so a
task that only works because it shares the launcher's folder fails here as it would on a cluster.
Both nodes are the interpreter's own ``ray`` (this venv's): the worker's Python processes are this
venv's Python, where protstruct is installed.

Every node process is started with ``--block`` in a new session, and stopped by its process group
and by the exact processes whose command line names this cluster's own temp folder. Not with
``ray stop``: it stops every Ray process of the host, other test sessions' clusters included.

Without ray or hydra-ray-launcher the fixture skips, unless ``PROTSTRUCT_REQUIRE_RAY`` is set (CI),
where it fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from protstruct.report.mlflow_ui import free_port, spawn_server

REQUIRE_ENV = "PROTSTRUCT_REQUIRE_RAY"
WORKER_CPUS = 2
# small object stores: the jobs pass configs and JobReturns only (the minimum Ray accepts is 75 MiB)
OBJECT_STORE_BYTES = 80 * 1024 * 1024


@dataclass(frozen=True)
class RayCluster:
    address: str  # 127.0.0.1:PORT, the head's GCS (hydra.launcher.ray.init.address)
    worker_node_id: str  # hex node id of the worker node, where every CPU task runs
    head_node_id: str
    root: Path  # both nodes' temp dirs, the worker's cwd and the nodes' logs
    worker_cwd: Path  # the folder `ray start` of the worker ran in
    worker_env: dict = field(default_factory=dict, repr=False)  # extra env the worker started with

    @property
    def logs(self) -> dict[str, Path]:
        return {"head": self.root / "head.log", "worker": self.root / "worker.log"}

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for name, path in self.logs.items():
            try:
                out.append(f"--- {name} ({path}) ---\n" + path.read_text(errors="replace")[-chars:])
            except OSError:
                out.append(f"--- {name}: no log ---")
        return "\n".join(out)


def why_no_ray() -> str | None:
    missing = [
        name
        for name, mod in (("ray", "ray"), ("hydra-ray-launcher", "hydra_plugins.hydra_ray_launcher"))
        if _find_spec(mod) is None
    ]
    return f"not installed: {', '.join(missing)}" if missing else None


def _find_spec(mod: str):
    try:
        return importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        return None


def skip_or_fail_without_ray() -> None:
    why = why_no_ray()
    if why is None:
        return
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(
            f'{REQUIRE_ENV} is set but Ray is unusable ({why}); install it with pip install "protstruct[scale]"'
        )
    pytest.skip(f"Ray cluster tests need ray and hydra-ray-launcher ({why}); set {REQUIRE_ENV}=1 to make this an error")


def _ray_cli() -> list[str]:
    """This interpreter's ``ray`` (the venv's), never one found on PATH."""
    exe = Path(sys.executable).with_name("ray")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def _node_env(extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "MLFLOW_TRACKING_"))}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (even by SIGKILL). `ray start
    --block` shares its children's fate the same way, so a killed test run leaves no Ray behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)


def _start_node(args: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    return spawn_server(
        [*_ray_cli(), "start", "--block", *args], cwd, env, log,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )  # fmt: skip


# Run in a short-lived driver: waits for `expected` alive nodes, prints them as JSON.
_NODES_SCRIPT = textwrap.dedent("""
    import json, sys, time, ray
    address, expected, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    while True:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        if len(nodes) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print("NODES=" + json.dumps([{"id": n["NodeID"], "resources": n["Resources"],
                                  "ip": n["NodeManagerAddress"]} for n in nodes]))
    ray.shutdown()
""")


def _wait_for_nodes(address: str, expected: int, timeout: float, procs: dict, cluster_root: Path) -> list[dict]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"`ray start` of the {name} exited with {proc.returncode}")
        left = max(deadline - time.monotonic(), 1.0)
        try:
            res = subprocess.run(
                [sys.executable, "-c", _NODES_SCRIPT, address, str(expected), str(left)],
                cwd=cluster_root,
                env=_node_env(None),
                capture_output=True,
                text=True,
                timeout=left + 30,
            )
        except subprocess.TimeoutExpired:
            last = "the node query timed out"
            continue
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("NODES=")]
        if res.returncode == 0 and lines:
            nodes = json.loads(lines[-1][len("NODES=") :])
            if len(nodes) >= expected:
                return nodes
            last = f"{len(nodes)} of {expected} nodes alive"
        else:
            last = f"node query exited with {res.returncode}: {res.stderr[-1500:]}"
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not have {expected} nodes within {timeout:.0f} s ({last})")


def _own_processes(marker: str) -> list:
    """The processes whose command line names this cluster's temp folder (nobody else's)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in p.info["cmdline"] or ()):
                found.append(p)
    return found


def _stop(procs: list[subprocess.Popen], marker: str, grace: float = 3.0) -> list[str]:
    """SIGTERM each node's process group, then SIGKILL what is left; returns what survived.
    (Ray shuts down gracefully in ~15 s; a throwaway cluster has nothing to save.)"""
    import psutil

    groups = [p.pid for p in procs]
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for p in procs:
            p.poll()
        if all(p.returncode is not None for p in procs) and not _own_processes(marker):
            break
        time.sleep(0.3)
    # what did not go: SIGKILL, by process group and by exact process (processes that left the group)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for p in _own_processes(marker):
        with contextlib.suppress(psutil.Error):
            p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)
    time.sleep(0.5)
    return [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in _own_processes(marker) if _alive(p)]


def _alive(p) -> bool:
    import psutil

    with contextlib.suppress(psutil.Error):
        return p.status() != psutil.STATUS_ZOMBIE
    return False


@contextlib.contextmanager
def start_ray_cluster(
    root: Path | None = None, *, worker_cpus: int = WORKER_CPUS, worker_env: dict | None = None, timeout: float = 90.0
) -> Iterator[RayCluster]:
    """Start a head (``--num-cpus=0``) and one worker node on 127.0.0.1, wait until both are
    alive, yield a :class:`RayCluster`, then stop every process of it.

    ``root`` should be short: Ray's Unix sockets live under it (108-byte path limit); by default a
    fresh ``/tmp/psray-*`` folder, removed afterwards. ``worker_env`` is added to the worker node's
    environment (as on a real cluster: set before ``ray start``, inherited by every task there).
    """
    skip_or_fail_without_ray()
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="psray-", dir="/tmp") if own_root else root).resolve()
    head_tmp, worker_tmp, worker_cwd = root / "h", root / "w", root / "worker_cwd"
    for d in (head_tmp, worker_tmp, worker_cwd):
        d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}"]
    procs: list[subprocess.Popen] = []
    marker = str(root)
    cluster = None
    try:
        head = _start_node(
            [
                "--head",
                f"--port={port}",
                "--num-cpus=0",
                "--num-gpus=0",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--temp-dir={head_tmp}",
                *common,
            ],
            cwd=root,
            env=_node_env(None),
            log=root / "head.log",
        )
        procs.append(head)
        # the worker's `ray start` retries the GCS until the head is up
        worker = _start_node(
            [
                f"--address={address}",
                f"--num-cpus={worker_cpus}",
                "--num-gpus=0",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--temp-dir={worker_tmp}",
                *common,
            ],
            cwd=worker_cwd,
            env=_node_env(worker_env),
            log=root / "worker.log",
        )
        procs.append(worker)
        try:
            nodes = _wait_for_nodes(address, 2, timeout, {"head": head, "worker": worker}, root)
        except RuntimeError as exc:
            tails = RayCluster(address, "", "", root, worker_cwd).log_tail()
            pytest.fail(f"{exc}\n{tails}")
        workers = [n for n in nodes if n["resources"].get("CPU", 0) > 0]
        heads = [n for n in nodes if n["resources"].get("CPU", 0) == 0]
        assert len(workers) == 1 and len(heads) == 1, f"unexpected nodes: {nodes}"
        cluster = RayCluster(
            address=address,
            worker_node_id=workers[0]["id"],
            head_node_id=heads[0]["id"],
            root=root,
            worker_cwd=worker_cwd,
            worker_env=dict(worker_env or {}),
        )
        yield cluster
    finally:
        survivors = _stop(procs, marker)
        if own_root and not survivors:
            shutil.rmtree(root, ignore_errors=True)
        if survivors:
            raise RuntimeError(f"Ray processes of {root} survived the teardown: {survivors}")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head (0 CPUs) and one worker node (2 CPUs) on loopback, shared by the session.

    The worker starts with the test MLflow auth server's admin credentials in its environment
    (``tests.mlflow_server.ADMIN_USER``/``ADMIN_PASSWORD``), as a real cluster's nodes need them
    for a password-protected tracking server; they are inert against any other store.
    """
    from tests.mlflow_server import ADMIN_PASSWORD, ADMIN_USER

    creds = {"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    with start_ray_cluster(worker_env=creds) as cluster:
        yield cluster
