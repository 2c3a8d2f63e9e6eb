"""The layout's guards beside import-linter's tiers: no import cycle between modules (imports made
inside functions count), no private name imported from another module, and few ``type: ignore``s,
each with its reason."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "loadgen"
MAX_TYPE_IGNORES = 10


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> Iterator[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import in the module, anywhere in it."""
    path = MODULES[name]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule, None) if submodule in MODULES else (base, alias.name)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _ in imports(name):
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_from_another_module() -> None:
    private = [f"{name} takes {taken} from {source}" for name in MODULES for source, taken in imports(name)
               if taken and taken.startswith("_") and not taken.startswith("__")
               and source.startswith("loadgen")]  # fmt: skip
    assert private == []


def test_few_type_ignores_each_with_its_reason() -> None:
    ignores = [(path, line) for path in MODULES.values() for line in path.read_text(encoding="utf-8").splitlines()
               if "type: ignore" in line]  # fmt: skip
    assert len(ignores) < MAX_TYPE_IGNORES
    assert all("type: ignore[" in line and line.split("type: ignore[", 1)[1].split("]", 1)[1].strip().startswith("#")
               for _, line in ignores)  # fmt: skip


RUN_TIER = PACKAGE / "run"
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 6


def test_the_run_tier_is_small_units() -> None:
    """No function in ``loadgen/run`` over 60 lines or 6 parameters (``self`` not counted)."""
    too_big = []
    for path in sorted(RUN_TIER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            arguments = node.args
            names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
            parameters = len([name for name in names if name not in ("self", "cls")])
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES or parameters > MAX_PARAMETERS:
                too_big.append(f"{path.name}:{node.name} ({lines} lines, {parameters} parameters)")
    assert not too_big
