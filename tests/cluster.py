"""A scale-out cluster of real processes on loopback, for tests and benchmarks.

    with RedisServer() as redis, EdgeStandin() as edge, Cluster(root, redis.url, edge) as cluster:
        api = cluster.api()                   # `newsreader serve --redis URL --port P --data DIR`
        worker = cluster.worker()             # `newsreader worker --redis URL --data DIR`
        api.base                              # "http://127.0.0.1:P"
        worker.kill()                         # SIGKILL: as a machine that dies
        api.terminate()                       # SIGTERM, then SIGKILL after a grace period
        cluster.logs()                        # every process's stderr, for a failure message

Each role is its own OS process, started with ``edge_tts`` pointed at the stand-in on import
(``tests.standin.client``), its standard output and error captured to a file under ``root``, in a
session of its own so that nothing it starts outlives it. ``api()`` returns once the node answers
``/healthz``; ``worker()`` once an API node's ``/healthz`` counts it among the live workers.
Leaving the ``with`` block (also on a failure) kills every process the cluster started. All nodes
share one ``--data`` folder: on one machine, the directory storage is the shared object store.
Nothing here imports Redis: the embedded tests never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from tests.redisserver import free_port

if TYPE_CHECKING:
    from tests.standin.server import EdgeStandin

ROOT = Path(__file__).resolve().parents[1]
POINTED = (
    "import sys; from tests.standin.client import point_edge_tts_at_on_import; "
    "point_edge_tts_at_on_import(sys.argv.pop(1)); "
    "sys.argv[0] = 'newsreader'; from newsreader.cli import main; main()"
)
"""A process that runs the CLI with edge_tts pointed at the stand-in named by argv[1]."""
READY_TIMEOUT = 30.0
"""Seconds a node gets to become ready (two cores shared by every process of the cluster)."""
STOP_GRACE = 10.0
"""Seconds ``terminate`` waits after SIGTERM before SIGKILL."""


class ClusterError(RuntimeError):
    """A process of the cluster did not start or did not become ready."""


class Node:
    """One process of the cluster: an API node or a worker."""

    def __init__(
        self,
        name: str,
        role: str,
        command: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.role = role
        self.command = list(command)
        self.log = log
        self.port: int | None = None
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "PYTHONUNBUFFERED": "1",
                    **(env or {}),
                },
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed with everything it starts
            )

    def __repr__(self) -> str:
        return f"<{self.role} {self.name} pid {self.pid}{' alive' if self.alive else ''}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` of an API node."""
        if self.port is None:
            raise ValueError(f"{self.name} is not an API node")
        return f"http://127.0.0.1:{self.port}"

    def _signal_group(self, signum: int) -> None:
        if self.process.poll() is not None:
            return  # reaped: its pid (and group id) may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)  # the group this node leads: only its own

    def kill(self) -> None:
        """SIGKILL, as when the machine dies; returns once the process is gone."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM (an orderly stop), then SIGKILL after ``grace`` s; the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output().rstrip().splitlines()[-lines:])


class Cluster:
    """Start API nodes and workers as processes sharing one Redis, stand-in and data folder."""

    def __init__(
        self,
        root: Path,
        redis_url: str,
        edge: EdgeStandin | str,
        *,
        data: Path | None = None,
        api_options: Sequence[str] = (),
        worker_options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.root = root
        self.redis_url = redis_url
        self.edge = edge if isinstance(edge, str) else f"127.0.0.1:{edge.port}"
        self.data = data or root / "data"
        self.api_options = list(api_options)
        self.worker_options = list(worker_options)
        self.env = dict(env or {})
        """More environment for every process (e.g. AWS_* for an S3 storage)."""
        self.ready_timeout = ready_timeout
        self.nodes: list[Node] = []
        root.mkdir(parents=True, exist_ok=True)

    # -- starting ------------------------------------------------------------------------------

    def _start(self, role: str, arguments: Sequence[str]) -> Node:
        number = sum(1 for node in self.nodes if node.role == role) + 1
        name = f"{role}{number}"
        command = [sys.executable, "-c", POINTED, self.edge, *arguments]
        node = Node(name, role, command, self.root / f"{name}.log", self.env)
        self.nodes.append(node)
        return node

    def api(self, *options: str, ready: bool = True) -> Node:
        """``newsreader serve --redis URL`` on a free port; waits for ``/healthz`` unless not
        ``ready``. ``options`` come after the cluster's ``api_options``."""
        arguments = ["serve", "--redis", self.redis_url, "--data", str(self.data)]
        return self._server("api", [*arguments, *self.api_options, *options], ready)

    def embedded(self, *options: str) -> Node:
        """``newsreader serve`` alone (no Redis: the one-process service) on a free port, with
        a data folder of its own; waits for ``/healthz``. ``options`` follow ``api_options``."""
        number = sum(1 for node in self.nodes if node.role == "embedded") + 1
        arguments = ["serve", "--data", str(self.root / f"embedded{number}-data")]
        return self._server("embedded", [*arguments, *self.api_options, *options], True)

    def _server(self, role: str, arguments: list[str], ready: bool) -> Node:
        for _ in range(3):  # a free port may be taken between the probe and the bind
            port = free_port()
            node = self._start(role, [*arguments, "--host", "127.0.0.1", "--port", str(port)])
            node.port = port
            if not ready or self._wait_healthy(node):
                return node
            if node.alive or "address already in use" not in node.output().lower():
                break
        raise ClusterError(f"{node.name} did not become ready:\n{node.tail()}")

    def worker(self, *options: str, ready: bool = True) -> Node:
        """``newsreader worker --redis URL``; waits until an API node's ``/healthz`` counts one
        more live worker, unless not ``ready`` (or no API node runs yet)."""
        before = self.live_workers() if ready and self.api_nodes() else 0
        node = self._start(
            "worker",
            [
                *("worker", "--redis", self.redis_url, "--data", str(self.data)),
                *self.worker_options,
                *options,
            ],
        )
        if ready and self.api_nodes():
            self.wait(
                lambda: self.live_workers() > before,
                f"{node.name} to be counted live in /healthz",
                watch=node,
            )
        return node

    def _wait_healthy(self, node: Node) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not node.alive:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{node.base}/healthz", timeout=2).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    # -- looking -------------------------------------------------------------------------------

    def api_nodes(self) -> list[Node]:
        """The API nodes that are running."""
        return [n for n in self.nodes if n.role == "api" and n.alive]

    def workers(self) -> list[Node]:
        """The workers that are running."""
        return [n for n in self.nodes if n.role == "worker" and n.alive]

    def health(self, node: Node | None = None) -> dict[str, Any]:
        """``/healthz`` of ``node`` (default: the first running API node), whatever its status."""
        node = node or self.api_nodes()[0]
        answer: dict[str, Any] = httpx.get(f"{node.base}/healthz", timeout=5).json()
        return answer

    def live_workers(self) -> int:
        """How many workers ``/healthz`` counts live (0 if it does not say)."""
        return int(self.health().get("workers") or 0)

    def wait(
        self,
        condition: Any,
        what: str,
        *,
        timeout: float | None = None,
        watch: Node | None = None,
    ) -> None:
        """Poll ``condition()`` until it is true; a ``ClusterError`` naming ``what`` (and the
        watched process's output if it died) after ``timeout`` s."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if condition():
                    return
            if watch is not None and not watch.alive:
                raise ClusterError(f"{watch.name} exited waiting for {what}:\n{watch.tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.05)

    def logs(self, lines: int = 25) -> str:
        """The end of every process's output, for a failure message."""
        return "\n".join(
            f"--- {node.name} (pid {node.pid}, "
            f"{'running' if node.alive else f'exit {node.process.returncode}'}):\n"
            f"{node.tail(lines)}"
            for node in self.nodes
        )

    # -- stopping ------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process the cluster started (SIGKILL: a test's end needs no grace)."""
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["POINTED", "Cluster", "ClusterError", "Node"]
