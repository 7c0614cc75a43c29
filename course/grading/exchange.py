"""The course's exchange steps: collect that takes regular files only, and release_feedback
for submissions that did not come through the exchange.

``nbgrader collect`` copies each submission from the exchange's inbound folder, which every
student can write, with ``shutil.copytree``: it follows links (a student's link to
``source/`` or another student's folder hands over what it points to), copies FIFOs and
devices by reading them (``/dev/zero`` never ends), and stops the whole class on a submission
that is not a folder. :class:`CollectRegularFiles` copies each with
:func:`course.submission_files.copy_folder` instead.

``nbgrader release_feedback`` finds a student's copy in the exchange by the secret that
``nbgrader submit`` wrote next to the submission. A submission placed in ``submitted/`` by hand
(or by ``zip_collect``) has none, and nbgrader stops with a ``FileNotFoundError`` for the whole
class. :class:`ReleaseFeedbackExplained` releases every feedback it can, and names for each of
the others what is missing and what to do.

nbgrader's collect takes the student's name from the submission folder's name, which
``nbgrader submit --student=SOMEONE`` lets any student choose; nbgrader 0.9.6 only warns when
the folder's owner is someone else, and collects it as that someone's latest work.
:class:`CollectRegularFiles` refuses such a submission and collects the named student's own.
"""

import fnmatch
import glob
import os
import pwd

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback

from course.grading import submission_files

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


class CollectRegularFiles(ExchangeCollect):
    """nbgrader's collect, copying only the regular files of one name of each submission: links
    (never followed), hard links, FIFOs, devices and sockets are refused and listed in the
    submission's refused-files.txt (see course/grading/submission_files.py), and a submission
    that is not a folder is collected empty; every copy has a time limit. nbgrader's ignore and
    include patterns and its size limits (CourseDirectory.max_file_size, max_dir_size) apply as in
    nbgrader's own copy; a file or submission over them is refused and named too. With
    ``check_owner`` (nbgrader's option, on by default) a submission whose folder another account
    owns is refused, and the student it names keeps their own latest submission: a hub whose
    users all share one account (Kubernetes' jovyan), or a laptop's exchange, sets
    ``CollectApp.check_owner = False``."""

    def init_src(self):
        super().init_src()
        if not self.check_owner:
            return
        pattern = os.path.join(self.inbound_path, "{}+{}+*".format(
            self.coursedir.student_id or "*", self.coursedir.assignment_id))
        by_student = {}
        for record in map(self._path_to_record, glob.glob(pattern)):
            if self._submitted_by_owner(record):
                by_student.setdefault(record["username"], []).append(record)
        self.src_records = [self._chosen(records) for records in by_student.values()]

    def _chosen(self, records):
        """nbgrader's choice among one student's submissions: the latest, or with
        ``before_duedate`` the latest one on time if there is one."""
        records = self._sort_by_timestamp(records)
        if self.duedate is not None and self.before_duedate:
            on_time = [r for r in records if r["timestamp"] <= self.duedate]
            return (on_time or records)[0]
        return records[0]

    def _submitted_by_owner(self, record):
        """Whether the account that owns the submission folder is the student it names."""
        student_id, path = record["username"], os.path.join(self.inbound_path, record["filename"])
        try:
            owner = pwd.getpwuid(os.lstat(path).st_uid).pw_name
        except (KeyError, OSError):
            owner = "an unknown account"
        if owner != student_id:
            self.log.warning("Refused %s: it names the student %s but %s submitted it", path,
                             student_id, owner)
        return owner == student_id

    def _ignored(self, path, is_folder):
        name = os.path.basename(path)
        if any(fnmatch.fnmatch(name, pattern) for pattern in self.coursedir.ignore):
            return True
        include = self.coursedir.include
        return (not is_folder and bool(include)
                and not any(fnmatch.fnmatch(name, pattern) for pattern in include))

    def do_copy(self, src, dest, log=None):
        refused = submission_files.copy_folder(
            src, dest, ignore=self._ignored,
            max_file_bytes=self.coursedir.max_file_size * 1000,
            max_total_bytes=self.coursedir.max_dir_size * 1000)
        for item in refused:
            self.log.warning("Refused in %s: %s is %s", src, item.path,
                             submission_files.KINDS[item.kind])
        if self.coursedir.groupshared:  # as nbgrader's own copy: group members may write
            for folder, _, names in os.walk(dest):
                for path in [folder] + [os.path.join(folder, name) for name in names]:
                    wanted = 0o2770 if path == folder else 0o660
                    mode = os.lstat(path).st_mode
                    if mode & wanted != wanted:
                        try:
                            os.chmod(path, (mode | wanted) & 0o2777)
                        except PermissionError:
                            self.log.warning("Could not make %s group-shared", path)
