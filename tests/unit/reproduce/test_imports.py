import ast
from pathlib import Path

import memae.reproduce

PACKAGE = Path(memae.reproduce.__file__).parent


def _imports(path: Path) -> set[str]:
    """The memae.reproduce modules a file imports, at its top or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n.removeprefix("memae.reproduce.") for n in names if n.startswith("memae.reproduce.")}
    return out


def test_the_reproduce_modules_import_each_other_without_a_circle() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(PACKAGE / f"{m}.py") & modules for m in modules}
    assert graph["table1"] >= {"figures"}  # the graph is read, not empty

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join([*path, module])}"
        for other in graph[module]:
            visit(other, (*path, module))

    for module in modules:
        visit(module, ())
