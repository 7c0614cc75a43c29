"""JupyterHub configuration of the course: the hub, run as root, starts each user's JupyterLab
as that user's own system account; the accounts of the group ``instructors`` grade with
formgrader in their own server, students have nbgrader's Assignments panel only, and everyone
fetches and submits through one exchange folder.

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
# The course folder (a clone of this repository) in each instructor's home.
COURSE_FOLDER = "jax-autodiff"
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

# Each server runs as the user's system account, in JupyterLab, with this hub's Python.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"NBGRADER_EXCHANGE_ROOT": str(EXCHANGE)}


def is_instructor(user):
    return any(group.name == INSTRUCTORS for group in user.groups)


def course_config(spawner):
    """Each server's nbgrader and Jupyter configuration, by role: students read the course id
    and the exchange from this folder's nbgrader_config.py and have formgrader switched off
    (deploy/student/); instructors start in their course folder, whose nbgrader_config.py
    (the sandbox, the grading steps) every nbgrader command of theirs reads. Every home is made
    private (0700), so that no student reads another's work or the instructors' course."""
    home = Path(pwd.getpwnam(spawner.user.name).pw_dir)
    home.chmod(stat.S_IRWXU)
    config_path = [str(DEPLOY)]
    if is_instructor(spawner.user):
        course = home / COURSE_FOLDER
        config_path.insert(0, str(course))
        spawner.notebook_dir = str(course)
    else:
        config_path.insert(0, str(DEPLOY / "student"))
    spawner.environment = dict(spawner.environment, JUPYTER_CONFIG_PATH=os.pathsep.join(
        config_path))


c.Spawner.pre_spawn_hook = course_config

# nbgrader's exchange: everyone may create files in it, and the sticky bit keeps anyone but its
# owner from renaming or deleting the course folder nbgrader makes in it. nbgrader itself makes
# that folder's outbound/ readable by all (0755) and inbound/ writable but not listable by
# students (0733), each submission named with a random string.
EXCHANGE.mkdir(parents=True, exist_ok=True)
EXCHANGE.chmod(0o1777)
