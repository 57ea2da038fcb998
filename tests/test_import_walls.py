"""The walls between the rooms (DESIGN.md): no import cycle between mer_jax's modules, and each room
imports only the rooms below it.

The installed package's source is read with `ast`, nothing imported. Every import counts wherever it
stands (at the top, or inside a function: a lazy import is still a dependency), absolute or relative;
``from package import name`` is an edge to the module ``package.name`` where there is one, else to the
package; a package's ``__init__`` is the module ``mer_jax.x``.
"""

import ast
import pathlib

import mer_jax

PACKAGE = pathlib.Path(mer_jax.__file__).parent

# room -> the rooms it must not import (a room: the first name below mer_jax, e.g. data, config, cli)
FORBIDDEN = {
    "data": {"config", "models", "training", "evaluation"},
    "layers": {"encoders", "models", "training"},
    "encoders": {"models", "training", "data"},
    "models": {"training", "evaluation", "cli", "inference"},
    "evaluation": {"training"},
}


def module_files(package: pathlib.Path) -> dict[str, pathlib.Path]:
    """Module name -> source file of every module of `package` (a package's ``__init__`` named as the package)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = (package.name, *path.relative_to(package).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _resolved(name: str, modules: dict) -> str | None:
    """The module `name` is, or lies in (an imported function or class): its longest prefix that is a module."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def import_edges(modules: dict[str, pathlib.Path]) -> list[tuple[str, str, pathlib.Path, int]]:
    """(importer, imported, file, line) for every import of one of `modules` by another."""
    edges = []
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [_resolved(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
                targets = [_resolved(f"{base}.{alias.name}", modules) for alias in node.names]
            else:
                continue
            edges.extend((name, target, path, node.lineno) for target in dict.fromkeys(targets)
                         if target is not None and target != name)
    return edges


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set] = {}
    for source, target, *_ in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def forbidden_edges(edges) -> list[str]:
    return [f"{path}:{line}: {source} imports {target} (the {_room(source)} room imports no {_room(target)})"
            for source, target, path, line in edges if _room(target) in FORBIDDEN.get(_room(source), ())]


def _where(edges, component) -> list[str]:
    inside = set(component)
    return [f"  {path}:{line}: {source} -> {target}" for source, target, path, line in edges
            if source in inside and target in inside]


def test_no_import_cycle():
    edges = import_edges(module_files(PACKAGE))
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(
        f"{' <-> '.join(component)}\n" + "\n".join(_where(edges, component)) for component in found)


def test_rooms_import_only_downward():
    problems = forbidden_edges(import_edges(module_files(PACKAGE)))
    assert not problems, "imports through a wall:\n" + "\n".join(problems)


def test_the_checks_see_lazy_relative_and_package_imports(tmp_path):
    """A planted package: a lazy relative import through a wall, a cycle through a package's __init__, and
    ``from package import submodule`` are all found, with their file and line."""
    root = tmp_path / "mer_jax"
    files = {
        "__init__.py": "",
        "config.py": "from mer_jax.data import readers\n",
        "data/__init__.py": "",
        "data/readers.py": "import os\n\n\ndef read():\n    from ..config import base_config\n",
        "layers/__init__.py": "from .attention import attend\n",
        "layers/attention.py": "import mer_jax.layers\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    modules = module_files(root)
    edges = import_edges(modules)
    assert {(s, t, line) for s, t, _, line in edges} == {
        ("mer_jax.config", "mer_jax.data.readers", 1), ("mer_jax.data.readers", "mer_jax.config", 5),
        ("mer_jax.layers", "mer_jax.layers.attention", 1), ("mer_jax.layers.attention", "mer_jax.layers", 1)}
    assert cycles(edges) == [["mer_jax.config", "mer_jax.data.readers"], ["mer_jax.layers", "mer_jax.layers.attention"]]
    assert forbidden_edges(edges) == [f"{root / 'data/readers.py'}:5: mer_jax.data.readers imports mer_jax.config "
                                      "(the data room imports no config)"]
    assert len(module_files(PACKAGE)) > 50  # the real package is found, not an empty folder
