"""Hostile submissions: answer cells that attack the grader instead of answering.

Each is the ``square`` answer of the tiny assignment (tests/tiny_assignment.py): attack code,
then a wrong ``square`` for the case where the attack changed nothing. The placeholders are
filled in by the test with what a real attacker could know or guess: ``{course}`` (the course
folder), ``{secret}`` (a file outside it), ``{exchange}``, ``{port}`` (a server the test runs
on 127.0.0.1), ``{grader_pid}`` and ``{marker}`` (a word to find a leftover process by).

``scores`` are the marks on (double, square, halve) that the attacker must get: never more
than a wrong answer. ``says`` is what the student's feedback must show of what was blocked.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Hostile:
    name: str
    reason: str
    code: str
    says: str  # words of the feedback page (None: nothing to show, checked otherwise)
    scores: tuple = (1, 0, 1)

    def answer(self, **facts):
        return self.code.format(**facts) + "\ndef square(x):\n    return 2 * x\n"


HOSTILE = [
    Hostile("exec-solution", "reads the instructor's solution from source/ and runs it", """
import json, os
path = os.path.join({course!r}, "source", "00_tiny", "tiny.ipynb")
for cell in json.load(open(path))["cells"]:
    if cell.get("metadata", {{}}).get("nbgrader", {{}}).get("grade_id") == "square":
        exec("".join(cell["source"]).replace("### BEGIN SOLUTION", "")
             .replace("### END SOLUTION", ""))
raise SystemExit("the solution ran")
""", "No such file or directory"),
    Hostile("gradebook", "writes full marks into the SQLite gradebook", """
import os, sqlite3
db = sqlite3.connect("file:" + os.path.join({course!r}, "gradebook.db") + "?mode=rw", uri=True)
db.execute("UPDATE grade SET manual_score = max_score")
db.commit()
""", "unable to open database file"),
    Hostile("rewrite-others", "replaces another student's submission and graded notebook", """
import os
for folder in ("submitted", "autograded"):
    path = os.path.join({course!r}, folder, "aaa-model", "00_tiny", "tiny.ipynb")
    with open(path, "w") as handle:
        handle.write("{{}}")
""", "No such file or directory"),
    Hostile("delete-others", "deletes every submission and the exchange", """
import shutil
shutil.rmtree({exchange!r})
shutil.rmtree({course!r} + "/submitted")
""", "No such file or directory"),
    Hostile("kill-grader", "kills the grading process by its pid", """
import os, signal
os.kill({grader_pid}, signal.SIGKILL)
""", "No such process"),
    Hostile("kill-group", "kills its parent and its whole process group", """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError as error:
    print("parent:", error)
os.killpg(0, signal.SIGKILL)
""", "KernelDied", (1, 0, 0)),
    Hostile("network", "connects to a server on the grading machine's loopback", """
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"stolen")
""", "Connection refused"),
    Hostile("fork-bomb", "forks until something stops it (at most 2,000 processes)", """
import os, time
children = []
try:
    for _ in range(2000):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
finally:
    print(f"forked {{len(children)}} processes")
""", "Resource temporarily unavailable"),
    Hostile("big-file", "writes a 300 MiB file", """
with open("big.bin", "wb") as handle:
    for _ in range(300):
        handle.write(bytes(2**20))
""", "File too large"),
    Hostile("fill-tmp", "fills /tmp with files under the size limit", """
for k in range(8):
    with open(f"/tmp/filler{{k}}.bin", "wb") as handle:
        for _ in range(200):
            handle.write(bytes(2**20))
""", "No space left on device"),
    Hostile("leave-process",
            "starts a process in a session of its own that outlives the kernel", """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", {marker!r}],
                 start_new_session=True)
print("started a background process")
""", None),
    Hostile("read-outside", "reads a file of the grading machine outside the course folder", """
print(open({secret!r}).read())
""", "No such file or directory"),
]
