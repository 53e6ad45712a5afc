"""DESIGN.md's layer rules: in a fresh interpreter, and by reading the source of src/."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_schedule_math_imports_no_torch_numpy_or_matplotlib():
    loaded = _modules_loaded_by("import superconverge.schedules")
    assert not loaded & {"torch", "numpy", "matplotlib"}


def test_top_level_package_loads_torch_only_when_a_torch_name_is_used():
    assert "torch" not in _modules_loaded_by(
        "import superconverge; superconverge.one_cycle(10, 0.1)"
    )
    assert "torch" in _modules_loaded_by("import superconverge; superconverge.HyperparamScheduler")


# ---------------------------------------------------------------------- static checks of src/
SRC = Path(__file__).resolve().parents[1] / "src" / "superconverge"
MUTATORS = {"update", "setdefault", "pop", "clear", "__setitem__"}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(), str(path))


def _mentions_param_groups(node):
    return "param_groups" in ast.unparse(node) or "add_param_group" in ast.unparse(node)


def param_group_writes(tree):
    """Lines that write an optimizer's param groups: assignments into ``...param_groups...``,
    to a hyper-parameter key (``group["lr"] = ...``), or to a name bound by iterating over
    param groups (``for group in opt.param_groups: group.update(...)``)."""
    group_names = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, (ast.For, ast.comprehension)) and _mentions_param_groups(node.iter)
        for target in ast.walk(node.target)
        if isinstance(target, ast.Name)
    }
    group_names |= {  # group = optimizer.param_groups[0]
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _mentions_param_groups(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    lines = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if not isinstance(target, (ast.Subscript, ast.Attribute)):
                continue
            base = target.value
            on_group = isinstance(base, ast.Name) and base.id in group_names
            # self.param_groups: the Trainer's own list of parameter lists, not an optimizer's
            own = ast.unparse(target) == "self.param_groups"
            if on_group or (_mentions_param_groups(target) and not own):
                lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if node.func.attr == "add_param_group" or (
                node.func.attr in MUTATORS
                and (
                    (isinstance(owner, ast.Name) and owner.id in group_names)
                    or _mentions_param_groups(owner)
                )
            ):
                lines.append(node.lineno)
    return lines


def test_only_the_pytorch_adapter_writes_param_groups():
    writers = {
        name: param_group_writes(tree)
        for name, tree in _modules()
        if not name.startswith("pytorch/")
    }
    assert {name: lines for name, lines in writers.items() if lines} == {}


@pytest.mark.parametrize(
    "code",
    [
        'for group in optimizer.param_groups:\n    group["lr"] = 0.1',
        "for g in opt.param_groups:\n    g.update(lr=0.1)",
        "optimizer.param_groups[0] = {}",
        'group = optimizer.param_groups[0]\ngroup["momentum"] = 0.9',
        "[g.setdefault('x', 1) for g in opt.param_groups]",
        "optimizer.add_param_group({'params': []})",
    ],
)
def test_the_param_group_scan_catches_a_new_writer(code):
    assert param_group_writes(ast.parse(code))


def _imports(tree, *, top_level_only):
    """(module, line) of each import; with `top_level_only`, not those inside functions or
    ``if TYPE_CHECKING:`` blocks."""
    found = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import) and not (top_level_only and nested):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif (
                isinstance(child, ast.ImportFrom)
                and child.module
                and not (top_level_only and nested)
            ):
                for alias in child.names:  # from superconverge import schedules: a submodule
                    submodule = f"{child.module}.{alias.name}"
                    path = SRC.parent / submodule.replace(".", "/")
                    is_module = path.is_dir() or path.with_suffix(".py").is_file()
                    found.append((submodule if is_module else child.module, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


STDLIB = set(sys.stdlib_module_names) | {"__future__"}
# DESIGN.md's layers, lowest first: a module imports (at module level) only its own layer or lower
SCHEDULES = {"schedules/", "_checks.py"}
ANALYSIS = {
    "finder/analysis.py",
    "finder/smoothing.py",
    "finder/sweep.py",
    "finder/result.py",
    "diagnostics/verdicts.py",
    "tuning/decisions.py",
    "_files.py",
    "_json.py",
}
ADAPTER = {"pytorch/", "data/", "models/"}
RUNNERS = {"finder/runner.py", "training/", "tuning/runner.py", "experiments/"}
PRESENTATION = {"diagnostics/plots.py", "diagnostics/report.py", "diagnostics/interactive.py"}
FRONT_ENDS = {"cli/", "keras/", "lightning/", "huggingface/", "__init__.py", "__main__.py"}
FRONT_ENDS |= {"finder/__init__.py", "diagnostics/__init__.py", "tuning/__init__.py"}
LAYERS = [SCHEDULES, ANALYSIS, ADAPTER, RUNNERS, PRESENTATION, FRONT_ENDS]


def _layer(name):
    """The layer index of a module path relative to src/superconverge (the most specific)."""
    best = None
    for index, members in enumerate(LAYERS):
        for member in members:
            matches = name == member or (member.endswith("/") and name.startswith(member))
            if matches and (best is None or len(member) > best[1]):
                best = (index, len(member))
    return None if best is None else best[0]


def _module_path(dotted):
    relative = dotted.removeprefix("superconverge").lstrip(".").replace(".", "/")
    if (SRC / relative).is_dir():
        return f"{relative}/__init__.py" if relative else "__init__.py"
    return f"{relative}.py"


def _upward_imports():
    found = []
    for name, tree in _modules():
        own = _layer(name)
        if own is None or name.endswith("__init__.py"):
            continue
        for module, line in _imports(tree, top_level_only=True):
            if not module.startswith("superconverge"):
                continue
            target = _module_path(module)
            layer = _layer(target)
            if layer is not None and layer > own:
                found.append((name, target, line))
    return found


def test_module_level_imports_only_point_downward():
    assert _upward_imports() == []


@pytest.mark.parametrize(
    "name",
    [
        "schedules/__init__.py",
        "schedules/plans.py",
        "schedules/primitives.py",
        "finder/analysis.py",
        "finder/smoothing.py",
        "finder/sweep.py",
        "diagnostics/verdicts.py",
        "tuning/decisions.py",
    ],
)
def test_math_and_decisions_import_no_torch(name):
    tree = ast.parse((SRC / name).read_text())
    imported = {module.split(".")[0] for module, _ in _imports(tree, top_level_only=False)}
    assert "torch" not in imported and "matplotlib" not in imported
    if name.startswith("schedules/"):
        assert imported <= STDLIB | {"superconverge"}


def test_only_plots_imports_matplotlib_at_module_level():
    importers = [
        name
        for name, tree in _modules()
        if any(m.split(".")[0] == "matplotlib" for m, _ in _imports(tree, top_level_only=True))
    ]
    assert importers in ([], ["diagnostics/plots.py"])


def test_plotly_is_imported_only_inside_the_interactive_plots():
    """plotly is optional (the [interactive] extra): imported inside functions, in one module."""
    importers = {
        (name, top_level)
        for name, tree in _modules()
        for top_level in (True, False)
        if any(m.split(".")[0] == "plotly" for m, _ in _imports(tree, top_level_only=top_level))
    }
    assert importers == {("diagnostics/interactive.py", False)}
