"""JupyterHub configuration of the course: the hub, run as root, starts each user's JupyterLab
as that user's own system account, with nbgrader's Assignments panel and no formgrader; the
course folder belongs to a grader account, whose formgrader runs as a hub service that only the
group ``instructors`` may open; everyone fetches and submits through one exchange folder.

Run it from this folder as root: ``jupyterhub -f deploy/jupyterhub_config.py``. README.md
(section "The course on a JupyterHub") explains each setting and what a Kubernetes hub changes.
"""

import os
import pwd
import stat
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
# Where students fetch and submit; nbgrader makes its course folder in it on the first release.
EXCHANGE = Path(os.environ.get("NBGRADER_EXCHANGE_ROOT", "/srv/nbgrader/exchange"))
# The course id: the name of the formgrader service, and of the course folder (a clone of this
# repository) in the grader account's home.
COURSE = "jax-autodiff"
# The system account that owns the course folder and gradebook and runs formgrader; no person
# logs in as it.
GRADER = os.environ.get("COURSE_GRADER", f"grader-{COURSE}")
INSTRUCTORS = "instructors"

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"
# npm install -g configurable-http-proxy@4 puts it on the PATH.
c.ConfigurableHTTPProxy.command = ["configurable-http-proxy"]

# Real accounts, checked by PAM; only the listed ones may log in.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {"instructor", "student1", "student2"}
c.JupyterHub.load_groups = {INSTRUCTORS: {"users": ["instructor"]}}

# Each server runs as the user's system account, in JupyterLab, with this hub's Python. Its
# nbgrader reads the course id and the exchange from this folder's nbgrader_config.py, and
# singleuser/ switches formgrader off (instructors grade in the service, below).
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "NBGRADER_EXCHANGE_ROOT": str(EXCHANGE),
    "JUPYTER_CONFIG_PATH": os.pathsep.join([str(DEPLOY / "singleuser"), str(DEPLOY)]),
}


def private_home(spawner):
    """Make the user's home private (0700) before their server starts, so that no student
    reads another's work (Debian's useradd makes homes 0755)."""
    Path(pwd.getpwnam(spawner.user.name).pw_dir).chmod(stat.S_IRWXU)


c.Spawner.pre_spawn_hook = private_home

# Formgrader, as nbgrader's "one class, several graders" layout has it: a JupyterLab of the
# grader account that the hub starts and keeps running, behind /services/jax-autodiff/. It
# starts in the course folder, whose nbgrader_config.py (the sandbox, the grading steps) every
# nbgrader command it runs reads, before this folder's (the exchange, private submit).
try:
    grader_home = Path(pwd.getpwnam(GRADER).pw_dir)
except KeyError:
    raise SystemExit(f"No grader account {GRADER!r}: create it (useradd -m {GRADER}) and "
                     f"clone the course into its home, {COURSE}/") from None
grader_home.chmod(stat.S_IRWXU)  # the course folder holds the solutions and the gradebook
c.JupyterHub.services = [{
    "name": COURSE,
    "url": "http://127.0.0.1:8010",
    "command": [sys.executable, "-m", "jupyterhub.singleuser"],
    "user": GRADER,
    "cwd": str(grader_home / COURSE),
    "environment": {
        "NBGRADER_EXCHANGE_ROOT": str(EXCHANGE),
        "JUPYTER_CONFIG_PATH": os.pathsep.join([str(grader_home / COURSE), str(DEPLOY)]),
        "JUPYTERHUB_DEFAULT_URL": "/formgrader",
    },
    # The hub's operator runs it: no "authorize access" page before it opens.
    "oauth_no_confirm": True,
}]
# Only the group instructors may open it; the hub refuses anyone else (403).
c.JupyterHub.load_roles = [{
    "name": f"formgrade-{COURSE}",
    "description": f"Open the formgrader service of {COURSE}",
    "groups": [INSTRUCTORS],
    "scopes": [f"access:services!service={COURSE}"],
}]

# nbgrader's exchange: everyone may create files in it, and the sticky bit keeps anyone but its
# owner from renaming or deleting the course folder nbgrader makes in it. nbgrader itself makes
# that folder's outbound/ readable by all (0755) and inbound/ writable but not listable by
# students (0733), each submission named with a random string.
EXCHANGE.mkdir(parents=True, exist_ok=True)
EXCHANGE.chmod(0o1777)
