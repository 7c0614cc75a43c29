"""Demo cells: cells tagged ``demo`` only show or time something, and grading does not run them.

A graded cell must then never read a name that only a demo cell binds: ``demo_dependencies``
finds such cells with a small analysis of the names each cell binds and reads (the build refuses
a notebook that has one).
"""

import ast

DEMO_TAG = "demo"


def is_demo(cell):
    """A cell tagged ``demo`` only shows or times something: grading does not run it."""
    return (cell.cell_type == "code" and DEMO_TAG in cell.metadata.get("tags", ())
            and "nbgrader" not in cell.metadata)


class _Scope(ast.NodeVisitor):
    """Names a statement binds in the notebook's global scope, and the global names it reads
    (reads inside a function body count: they happen whenever the function is called)."""

    def __init__(self):
        self.stored, self.loaded = set(), set()

    def visit_Name(self, node):
        (self.loaded if isinstance(node.ctx, ast.Load) else self.stored).add(node.id)

    def visit_alias(self, node):
        self.stored.add((node.asname or node.name).split(".")[0])

    def _local(self, nodes, params=()):
        inner = _Scope()
        for node in nodes:
            inner.visit(node)
        self.loaded |= inner.loaded - inner.stored - set(params)

    def visit_FunctionDef(self, node):
        for outer in node.decorator_list + node.args.defaults + [
                d for d in node.args.kw_defaults if d is not None]:
            self.visit(outer)
        self.stored.add(node.name)
        args = node.args
        params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        params += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
        self._local(node.body, params)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        args = node.args
        self._local([node.body], [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs])

    def visit_ClassDef(self, node):
        for outer in node.decorator_list + node.bases:
            self.visit(outer)
        self.stored.add(node.name)
        self._local(node.body)

    def _comprehension(self, node):
        parts = [g for g in node.generators] + [getattr(node, "elt", None),
                                                 getattr(node, "key", None),
                                                 getattr(node, "value", None)]
        self._local([p for p in parts if p is not None])

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension


def _names(node):
    scope = _Scope()
    scope.visit(node)
    return scope.stored, scope.loaded


def _cell_names(source):
    """(names a cell binds, names it reads before binding them), statement by statement: the
    value of an assignment is read before its targets are bound; names bound anywhere inside a
    compound statement (a loop variable, a function's parameters) count as bound before it."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    bound, free = set(), set()
    for statement in ast.parse("\n".join(lines)).body:
        stored, loaded = _names(statement)
        if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)):
            free |= loaded - bound
        else:
            free |= loaded - bound - stored
        bound |= stored
    return bound, free


def demo_dependencies(nb):
    """``[(cell index, name, index of the demo cell that last bound it)]``: cells that grading
    runs but that read a name only a skipped demo cell binds (they would differ, or fail,
    when graded). Empty for a sound notebook."""
    found, last_demo = [], {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        bound, free = _cell_names(cell.source)
        if is_demo(cell):
            last_demo.update(dict.fromkeys(bound, index))
            continue
        found += [(index, name, last_demo[name]) for name in sorted(free & set(last_demo))]
        for name in bound:
            last_demo.pop(name, None)
    return found
