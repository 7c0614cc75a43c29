"""nbgrader's configuration for every server of the hub (the hub puts this folder on each
server's JUPYTER_CONFIG_PATH): the course's id, the shared exchange, and a submit that keeps
each submission from other students (private_submit.py, in this folder)."""

import os
import sys

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.course_id = "jax-autodiff"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
c.ExchangeFactory.submit = "private_submit.PrivateSubmit"
