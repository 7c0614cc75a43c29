"""nbgrader's release_feedback, for submissions that did not come through the exchange.

``nbgrader release_feedback`` finds a student's copy in the exchange by the secret that
``nbgrader submit`` wrote next to the submission. A submission placed in ``submitted/`` by hand
(or by ``zip_collect``) has none, and nbgrader stops with a ``FileNotFoundError`` for the whole
class. This version releases every feedback it can, and names for each of the others what is
missing and what to do.
"""

import glob
import os

from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback

WRITTEN_BY_SUBMIT = ("timestamp.txt", "submission_secret.txt")


class ReleaseFeedbackExplained(ExchangeReleaseFeedback):

    def copy_files(self):
        pattern = self.coursedir.format_path(self.coursedir.feedback_directory, "*",
                                             self.coursedir.assignment_id)
        unreleasable = {}
        for folder in sorted(p for p in glob.glob(pattern) if os.path.isdir(p)):
            missing = [n for n in WRITTEN_BY_SUBMIT if not os.path.exists(os.path.join(folder, n))]
            if missing:
                unreleasable[os.path.basename(os.path.dirname(folder))] = (folder, missing)
        excluded = self.coursedir.student_id_exclude
        self.coursedir.student_id_exclude = ",".join(
            sorted(set(filter(None, excluded.split(","))) | set(unreleasable)))
        try:
            super().copy_files()
        finally:
            self.coursedir.student_id_exclude = excluded
        for student, (folder, missing) in unreleasable.items():
            self.log.warning(
                "Not released: %s's feedback in %s. That submission did not come through the "
                "exchange (nbgrader submit), so it has no %s, and the student's "
                "nbgrader fetch_feedback could not find it. Send the student the HTML files "
                "of that folder another way.", student, folder, " or ".join(missing))
