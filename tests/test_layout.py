"""The layout holds: each module imports only from the layers below it, and stays small.

Every project module must appear in LAYERS, so a new one is placed on purpose. Imports are read
from the source (inside functions too), so an import hidden in a function cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import ROOT

# Lowest first. A module may import from any layer strictly below its own, never beside or above.
LAYERS = [
    ["config"],
    ["imaging", "store", "vectors", "proxy", "livestore", "metrics", "runtimes", "batching"],
    ["edits", "gem", "tta", "matching"],
    ["pgstore", "recall", "duplicates", "queries"],
    ["autoencoder", "plots"],
    ["embedders"],
    ["ann", "collection", "tuning"],
    ["embedding", "live"],
    ["rayengine", "compaction"],
    ["service"],
    ["indexer", "web"],
    ["img2vec", "web.errors"],
    ["web.admin", "web.copies", "web.files", "web.ops", "web.search", "evaluate"],
    ["app", "bench.common"],
    ["bench.pg"],
    [
        "bench.engines",
        "bench.indexes",
        "bench.models",
        "bench.service",
        "bench.soak",
        "bench.runtimes",
        "bench.robustness",
    ],
    ["bench.run"],
]
LAYER_OF = {module: depth for depth, names in enumerate(LAYERS) for module in names}
MAX_MODULE_LINES = 430
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_modules() -> dict[str, Path]:
    files = [*ROOT.glob("*.py"), *ROOT.glob("web/*.py"), *ROOT.glob("bench/*.py")]
    return {_module_name(p): p for p in files if p.name != "gunicorn.conf.py"}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        parents = [name.rsplit(".", depth)[0] for name in names for depth in range(1, name.count(".") + 1)]
        found |= {name for name in [*names, *parents] if name in known}  # a.b imports package a too
    return found


MODULES = _project_modules()
GRAPH = {name: _imports(path, set(MODULES)) - {name} for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert sorted(set(MODULES) - set(LAYER_OF)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_the_layers_below(module):
    upward = sorted(name for name in GRAPH[module] if LAYER_OF[name] >= LAYER_OF[module])
    assert upward == [], f"{module} (layer {LAYER_OF[module]}) imports {upward} from its own layer or above"


def test_there_is_no_import_cycle():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path[path.index(module) :], module])
        if module not in done:
            for name in sorted(GRAPH[module]):
                visit(name, [*path, module])
            done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


def test_the_layer_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def later():\n    import img2vec\n    from web.errors import wants_json\n")
    assert _imports(source, set(MODULES)) == {"img2vec", "web.errors", "web"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    source = MODULES[module].read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{module} has {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{module}.{node.name} is {length} lines long"


def test_create_app_only_wires():
    tree = ast.parse(MODULES["app"].read_text())
    create_app = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "create_app")
    assert create_app.end_lineno - create_app.lineno + 1 <= 60
