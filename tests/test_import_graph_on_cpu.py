"""No import circle among `star_verl` modules, counting the imports inside functions (a function-level
`import` hides a circle from Python but not from the reader): every module is parsed with `ast`,
each `import star_verl.x` / `from star_verl.x import y` / `from . import y` is resolved to the module
it loads (`y` when it is a module, else `x`), and the graph must have no cycle."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import star_verl

PACKAGE = Path(star_verl.__file__).resolve().parent


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Node -> the name of the function it is in (the outermost one)."""
    names: dict[ast.AST, str] = {}
    for node in ast.walk(tree):  # breadth first: an outer function is met before the ones inside it
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.walk(node):
                if child is not node:
                    names.setdefault(child, node.name)
    return names


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {imported star_verl module: where ("file:line", with the function when inside one)}."""
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, str]] = {}
    for name, (path, is_package) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        inside = _enclosing_functions(tree)
        edges: dict[str, str] = {}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [owner(a.name) for a in node.names if a.name.split(".")[0] == "star_verl"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                if source.split(".")[0] != "star_verl":
                    continue
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else owner(source) for a in node.names]
            for target in targets:
                if target and target != name:
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" + (f" in {inside[node]}()" if node in inside else "")
                    edges.setdefault(target, where)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[tuple[frozenset[str], list[str]]]:
    """The strongly connected components with more than one module (Tarjan), each with one cycle
    through it (a path that ends where it starts)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    paths = []
    for component in components:
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until a module repeats: that closes a cycle
            step = min(w for w in graph[path[-1]] if w in component)
            if step in seen:
                paths.append((frozenset(component), [*path[path.index(step) :], step]))
                break
            path.append(step)
            seen.add(step)
    return paths


def describe(graph: dict[str, dict[str, str]], cycle: list[str]) -> str:
    return "\n  ".join(f"{a} -> {b}   ({graph[a][b]})" for a, b in itertools.pairwise(cycle))


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "star_verl.tasks.registry" in graph and graph["star_verl.tasks.registry"] == {}  # the ground floor imports nothing
    # an import statement inside a function is an edge, named with its function
    assert graph["star_verl.eval.scoring"]["star_verl.tasks.tvr"].endswith(("in score_sample()", "in aggregate_tvr()"))
    assert "star_verl.prep.mindcube" in graph["star_verl.prep.build_multiview"]


def test_a_cycle_is_found_and_printed():
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2 in f()"}, "c": {"a": "c.py:3"}, "d": {"a": "d.py:1"}}
    assert cycles(graph) == [(frozenset("abc"), ["a", "b", "c", "a"])]
    assert describe(graph, ["a", "b", "c", "a"]) == "a -> b   (a.py:1)\n  b -> c   (b.py:2 in f())\n  c -> a   (c.py:3)"
    assert cycles({"a": {"b": ""}, "b": {}}) == []


def test_no_import_cycle_among_star_verl_modules():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycle(s):\n  " + "\n\n  ".join(describe(graph, path) for _, path in found)
