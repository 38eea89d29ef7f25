"""The shape the code keeps: no import cycles between project modules (imports inside functions
count), no function-local imports of project modules except to keep an optional dependency
optional, no module over 500 lines and no class over 300.

import-linter (``lint-imports`` in ``make test``) checks the layers between the programs and
cycles between sibling packages; this test checks single modules, which it does not."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("examkiosk_wire", "edge_server", "region_server", "station", "provisioning")
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a package's names live in its __init__)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> list[tuple[str, int, bool, str]]:
    """``(imported module, line, inside a function, source line)`` for each project import."""
    lines = path.read_text().splitlines()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if _resolve(f"{base}.{alias.name}") != _resolve(base) else base
                           for alias in child.names]
            else:
                nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                visit(child, nested)
                continue
            for target in {_resolve(t) for t in targets} - {None, module}:
                found.append((target, child.lineno, in_function, lines[child.lineno - 1]))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target, _line, _local, _text in _imports(module, path):
            edges[module].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_checker_sees_a_cycle_and_a_hidden_import():
    """The checks below can fail: a cycle through a function-local import is found."""
    some = sorted(MODULES)[:2]
    fake = defaultdict(set, {some[0]: {some[1]}, some[1]: {some[0]}})
    assert _cycles(fake) == [sorted(some)]


def test_no_import_cycles_between_modules():
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles (imports inside functions count): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_function_local_imports_only_keep_an_optional_dependency_optional():
    """A project module imported inside a function hides a dependency from the reader and from
    import-linter; it is allowed only to keep an optional dependency (picamera2, boto3) out of a
    program that does not need it, and then says so in a comment on the line."""
    hidden = [f"{path.relative_to(REPO)}:{line}: {text.strip()}"
              for module, path in MODULES.items()
              for _target, line, local, text in _imports(module, path)
              if local and "optional" not in text]
    assert hidden == [], "function-local imports of project modules:\n" + "\n".join(hidden)


def test_no_module_over_500_lines():
    long = [f"{path.relative_to(REPO)} ({n} lines)" for path in MODULES.values()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long == [], f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_class_over_300_lines():
    big = [f"{path.relative_to(REPO)}: {node.name} ({node.end_lineno - node.lineno + 1} lines)"
           for path in MODULES.values() for node in ast.walk(ast.parse(path.read_text()))
           if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert big == [], f"classes over {MAX_CLASS_LINES} lines: {big}"
