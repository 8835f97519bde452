"""The package's import graph, read from the code: its modules, the imports between them, any circle, and any
private (``_``) name one module takes from another.

    python tools/import_graph.py [--json]

Every ``import`` and ``from ... import`` of a project module counts, those inside functions too (an import
deferred to keep torch out of the runtime still ties two modules). ``export/`` and ``kernels/`` are read as
the installed ``maskface_rt.export`` and ``maskface_rt.kernels``. Importing ``a.b`` also runs ``a/__init__``;
that implicit edge is not counted. Exit status: 0 no circle and no private name taken, 1 either (listed), 2 bad
option.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The package's folders and the module names they are installed as (pyproject's package-dir).
FOLDERS = {"maskface_rt": "maskface_rt", "export": "maskface_rt.export", "kernels": "maskface_rt.kernels"}


def modules(repo: Path = REPO) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package."""
    found = {}
    for folder, prefix in FOLDERS.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = list(path.relative_to(repo / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement names (``from a import b``: both ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def edges(found: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, name, is_package):
                # "from a import b": b is a module when a.b is one, else a name of module a
                if target in found and target != name:
                    graph[name].add(target)
    return graph


def private_imports(found: dict[str, Path]) -> list[str]:
    """``module: from target import _name`` for each private name a module takes from another project module."""
    taken = []
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and _imported(node, name, path.name == "__init__.py")[0] in found:
                base = _imported(node, name, path.name == "__init__.py")[0]
                taken += [
                    f"{name}: from {base} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")
                ]
    return taken


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that reach each other through imports, one sorted list per circle."""
    reach = {name: _reachable(graph, name) for name in graph}
    found = {tuple(sorted(m for m in reach[name] if name in reach[m])) for name in graph if name in reach[name]}
    return sorted(list(circle) for circle in found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    found_modules = modules()
    graph = edges(found_modules)
    found = circles(graph)
    private = private_imports(found_modules)
    figures = {
        "modules": len(graph),
        "imports": sum(map(len, graph.values())),
        "circles": found,
        "private_imports": private,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{figures['modules']} modules, {figures['imports']} imports between them, {len(found)} circle(s), "
            f"{len(private)} private name(s) taken from another module"
        )
        for circle in found:
            print("circle: " + " <-> ".join(circle))
        for line in private:
            print("private: " + line)
    return 1 if found or private else 0


if __name__ == "__main__":
    sys.exit(main())
