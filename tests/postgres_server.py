"""A PostgreSQL server of a test's own, from Debian's packages (``.ci/run`` installs them), on a
free loopback port: the gradebook that several grading processes (or machines) share."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def postgres_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not installed; .ci/run installs Debian's postgresql")
    pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running server: :meth:`new_database` gives the URL of a new, empty database."""

    def __init__(self, run, port):
        self._run, self.port = run, port

    def new_database(self, name):
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "grader", name)
        return f"postgresql://grader@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def running_server():
    """Start a PostgreSQL server (user ``grader``, trusted on loopback); stop it at the end."""
    bindir = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="gradebook-pg-"))
    data, port = folder / "data", free_port()
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        folder.chmod(0o700)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*args):
        subprocess.run(as_user + [str(bindir / args[0]), *args[1:]], check=True,
                       capture_output=True, text=True)

    run("initdb", "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8")
    run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "start", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1")
    try:
        yield Server(run, port)
    finally:
        run("pg_ctl", "-D", str(data), "-w", "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)
