"""nbgrader's CSV export, with empty scores where a student submitted nothing.

``nbgrader export`` writes 0.0 for an assignment a student never submitted, which reads like
a real zero. This exporter writes the same file with the score columns left empty there.
"""

import csv

from nbgrader.api import MissingEntry
from nbgrader.plugins.export import CsvExportPlugin

SCORES = ("raw_score", "late_submission_penalty", "score")


class CsvExportBlankWhenUnsubmitted(CsvExportPlugin):

    def export(self, gradebook):
        super().export(gradebook)
        dest = self.to or "grades.csv"
        with open(dest, newline="") as handle:
            rows = list(csv.DictReader(handle))
            fields = list(rows[0]) if rows else None
        if not rows:
            return
        for row in rows:
            try:
                gradebook.find_submission(row["assignment"], row["student_id"])
            except MissingEntry:
                row.update({key: "" for key in SCORES})
        with open(dest, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
