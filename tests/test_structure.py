"""The renderer's shape: roles by folder, imports one way and without cycles, no
data read on import, and no function outside the click commands with more than
eight parameters (a sign of options threaded through layers instead of a spec).

The import graph is read from the source (every ``import``, at module level
or inside a function), so an import that only runs later counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from clipig_gallery.core.paths import DATA_DIR

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "clipig_gallery"
RENDERER = PACKAGE / "renderer"
# A module may import its own folder and the folders before it, never after.
RANKS = {"language": 0, "engine": 1, "execution": 2, "runs": 3, "cli": 4, "terminal": 4}
MAX_PARAMETERS = 8


def module_name(path: Path) -> str:
    """``renderer.runs.first`` for clipig_gallery/renderer/runs/first.py."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def renderer_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(RENDERER.rglob("*.py"))}


def own(module: str) -> str:
    """An absolute import of the project's, by the name module_name gives it."""
    return module.removeprefix("clipig_gallery.")


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The renderer modules ``path`` imports, wherever the import statement is."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [own(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = own(node.module or "")
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # ``from package import module`` names a module; otherwise the module itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != "renderer"}
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    modules = renderer_modules()
    return {name: imports_of(path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for after in sorted(graph.get(node, ())):
            if state.get(after) == 1:
                return path[path.index(after):] + [after]
            if after not in state and (cycle := visit(after)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def role(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else None


def test_the_renderer_has_its_roles_as_folders():
    folders = {p.name for p in RENDERER.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {"language", "engine", "execution", "runs"}
    loose = {p.name for p in RENDERER.glob("*.py")}
    assert loose == {"__init__.py", "cli.py", "terminal.py"}  # the command line


def test_no_import_cycle_inside_the_renderer():
    graph = import_graph()
    assert len(graph) > 30 and sum(map(len, graph.values())) > 60  # it read the imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_each_folder_imports_only_itself_and_those_before_it():
    wrong = [f"{module} imports {target}"
             for module, targets in import_graph().items() if role(module)
             for target in targets if role(target) and RANKS[role(target)] > RANKS[role(module)]]
    assert not wrong, "\n".join(wrong)


def test_importing_the_renderer_reads_no_data_file():
    probe = f"""
import importlib, pkgutil, sys
data = {str(DATA_DIR)!r}
opened = []
sys.addaudithook(lambda event, args: event == "open" and isinstance(args[0], str)
                 and args[0].startswith(data) and opened.append(args[0]))
from clipig_gallery import renderer
for info in pkgutil.walk_packages(renderer.__path__, renderer.__name__ + "."):
    importlib.import_module(info.name)
print("on import:", len(opened))
from clipig_gallery.core.prompts import load_prompts
load_prompts()
print("after load_prompts:", len(opened))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=300).stdout
    assert "on import: 0" in out, out
    assert "after load_prompts: 0" not in out, out  # the probe does see a read


def parameter_counts(source: str, where: str) -> list[tuple[str, int]]:
    """Every function of ``source`` that is not a click command, with its parameter
    count (``self`` and ``cls`` not counted)."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if any(".command" in d or d.startswith("command") for d in decorators):
            continue
        a = node.args
        names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
        names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
        found.append((f"{where}:{node.lineno} {node.name}",
                      len([n for n in names if n not in ("self", "cls")])))
    return found


def test_no_renderer_function_outside_the_commands_takes_more_than_eight_parameters():
    counts = [c for path in sorted(RENDERER.rglob("*.py"))
              for c in parameter_counts(path.read_text(), str(path.relative_to(REPO)))]
    assert len(counts) > 300  # it read every function
    over = [f"{where}: {n}" for where, n in counts if n > MAX_PARAMETERS]
    assert not over, "\n".join(over)


@pytest.mark.parametrize("source, over", [
    ("def f(a, b, c, d, e, f, g, h, i): pass", [9]),
    ("def f(self, a, b, c, d, e, f, g, h): pass", []),
    ("@click.command()\ndef f(a, b, c, d, e, f, g, h, i): pass", []),
    ("def f(a, *args, b, c, d, e, f, g, **kw): pass", [9]),
])
def test_the_parameter_count_sees_a_long_signature(source, over):
    counts = parameter_counts(source, "probe")
    assert [n for _, n in counts if n > MAX_PARAMETERS] == over
