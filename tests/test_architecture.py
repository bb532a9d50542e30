"""The tree's shape (docs/DESIGN.md, "Architecture"): imports run one way between layers and
there are no import cycles between modules, lazy (function-level) imports included."""

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "crossgen"

# Lower layers never import higher ones. Same-layer imports are allowed but must not cycle.
LAYERS = [
    {"errors", "io", "malloc", "__init__", "py"},
    {"data", "mixture", "presets"},
    {"config"},
    {"theory", "tasks"},
    {"backends"},
    {"workflow"},
    {"metrics"},
    {"report"},
    {"sweep", "experiment", "tracking"},
    {"cli", "__main__"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: frozenset) -> set[str]:
    """crossgen modules imported anywhere in the file (a `from pkg import mod` counts as pkg.mod)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("crossgen")}
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crossgen") and node.level == 0
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


@lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = frozenset(_module_name(p) for p in files)
    return {_module_name(p): _imports(p, modules) for p in files}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYER_OF[top]


def test_every_top_level_module_has_a_layer():
    tops = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    }
    assert tops <= set(LAYER_OF), f"add to LAYERS: {sorted(tops - set(LAYER_OF))}"


def test_imports_never_go_up_a_layer():
    upward = sorted(
        f"{mod} -> {dep}"
        for mod, deps in _graph().items()
        for dep in deps
        if dep != "crossgen" and _layer(dep) > _layer(mod)
    )
    assert upward == []


def test_no_import_cycles_between_modules():
    graph = {
        m: {d for d in deps if d in _graph() and d != m and not m.startswith(d + ".")} for m, deps in _graph().items()
    }
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
