"""A real Dask cluster on loopback for the tests: a ``dask scheduler`` and ``WORKERS``
single-threaded ``dask worker`` processes of the venv, each started by the test."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests import postgres_server

DASK = Path(sys.executable).parent / "dask"
WORKERS = 2
START_SECONDS = 60


class Cluster:
    """A scheduler and ``WORKERS`` single-threaded workers, each a process of its own group."""

    def __init__(self, course, folder, last_worker_env=None, scheduler_env=None):
        self.port = postgres_server.free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(course))  # the course package, as on a worker
        self.processes = [self._start(folder / "scheduler.log", dict(env, **scheduler_env or {}),
                                      "scheduler", "--host",
                                      "127.0.0.1", "--port", str(self.port), "--no-dashboard")]
        for k in range(WORKERS):
            if k == WORKERS - 1 and last_worker_env:
                env = dict(env, **last_worker_env)
            self.processes.append(self._start(
                folder / f"worker{k}.log", env, "worker", self.address, "--nworkers", "1",
                "--nthreads", "1", "--no-dashboard", "--local-directory", str(folder / f"w{k}")))
        with self.client() as client:
            client.wait_for_workers(WORKERS, timeout=START_SECONDS)

    @staticmethod
    def _start(log, env, *args):
        with open(log, "wb") as out:
            return subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=START_SECONDS, set_as_default=False)

    def kill_scheduler(self):
        os.killpg(self.processes[0].pid, signal.SIGKILL)

    def stop(self):
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
