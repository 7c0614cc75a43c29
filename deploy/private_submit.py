"""``nbgrader submit`` for the hub's students, with each submitted notebook private.

nbgrader 0.9.6 leaves a submission in the exchange's inbound folder readable by every account
(folder 0777, files 0644), hidden only by its name, which carries a random string and which no
student can list (inbound is 0733). :class:`PrivateSubmit` then takes reading away from other
students.
"""

import os

from nbgrader.exchange.default.submit import ExchangeSubmit


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit; then the submission's folders are 0770 and the student's files in it
    0640, in the group that nbgrader's setgid inbound folder gives them (that of the grader
    account, which released the assignment and which no student is in): the student and the
    grader account read them, the grader account also deletes them, no one else reads them.
    nbgrader writes timestamp.txt and submission_secret.txt after the copy, in the student's
    own group (no group the student could give them lets the grader account read them): those
    two stay 0644, as nbgrader makes them; neither holds any of the student's work."""

    def copy_files(self):
        super().copy_files()
        submission = os.path.join(self.inbound_path, self.assignment_filename)
        graders = os.stat(self.inbound_path).st_gid
        for folder, _, names in os.walk(submission):
            os.chmod(folder, 0o770)
            for path in (os.path.join(folder, name) for name in names):
                os.chmod(path, 0o640 if os.stat(path).st_gid == graders else 0o644)
