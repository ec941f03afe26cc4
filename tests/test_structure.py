"""The package's structure: no import circle (imports inside functions counted too), and the
report rebuilt from JSON files without torch."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pystatsml_tl

PACKAGE = Path(pystatsml_tl.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The package modules an ``from ... import ...`` statement imports (a name that is a
    submodule counts as that module)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports anywhere in its text (at the
    top, inside functions, under TYPE_CHECKING), as read by an AST walk."""
    modules = {_module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(name, path.name == "__init__.py", node)
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a list of modules (first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert "pystatsml_tl.runs.kinds" in graph and graph["pystatsml_tl.runs.report.write"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_circle_finder_sees_an_import_inside_a_function(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def late():\n    from .a import thing\n")
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg.a"} and find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


@pytest.fixture
def report_folder(tmp_path):
    """A folder of two experiments x 2 seeds of complete metrics (schema 2), written as JSON."""
    from fakes import fake_metrics

    for name in ("finetune-sgd", "scratch"):
        for seed in (0, 1):
            folder = tmp_path / name / f"seed-{seed}"
            folder.mkdir(parents=True)
            metrics = fake_metrics(name, seed, correct=80 + 5 * (name == "finetune-sgd") + seed)
            (folder / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path


def test_the_report_command_does_not_import_torch(report_folder):
    code = ("import sys\nfrom pystatsml_tl.cli import main\nstatus = main(['report', sys.argv[1]])\n"
            "print('torch loaded:', 'torch' in sys.modules)\nsys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, str(report_folder)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch loaded: False" in done.stdout
    assert "4 complete run(s), 0 failed" in done.stdout and (report_folder / "summary.html").is_file()
