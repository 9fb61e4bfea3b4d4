"""The layout holds: the package's sub-packages import only from those below them, and stay small.

Every module of the package belongs to one layer: ``imgsim/config.py`` at the bottom, then one
sub-package per concern. A module may import from its own sub-package (without a cycle) and from
the layers below it, never from above. Imports are read from the source (inside functions too), so
an import hidden in a function cannot hide a cycle. The root holds only the card's entry points,
each a few lines over the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import ROOT

# Lowest first: imgsim.<name> for each layer.
LAYERS = [
    "quiet_tensorflow",
    "config",
    "durable",
    "threads",
    "images",
    "index",
    "models",
    "search",
    "duplicates",
    "live",
    "query",
    "indexing",
    "measure",
    "serve",
    "cli",
]  # fmt: skip (one row per layer would hide their order)
LAYER_OF = {name: depth for depth, name in enumerate(LAYERS)}
ENTRY_POINTS = {
    "app.py",
    "config.py",
    "img2vec.py",
    "ann.py",
    "autoencoder.py",
    "evaluate.py",
    "gunicorn.conf.py",
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_ENTRY_POINT_LINES = 30


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted((ROOT / "imgsim").rglob("*.py"))}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[1:] == ["__main__"]:  # python -m imgsim: the command line
        return LAYER_OF["cli"]
    return LAYER_OF.get(parts[1]) if len(parts) > 1 else None  # "imgsim" itself sits under every layer


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package modules a file imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # from imgsim.index import store: the module imgsim.index.store, else the name's package
            full = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in known else node.module for name in full]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


GRAPH = {name: _imports(path, set(MODULES)) - {name} for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "imgsim" and _layer(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_own_layer_or_below(module):
    if module == "imgsim":
        return
    upward = sorted(name for name in GRAPH[module] if (_layer(name) or 0) > _layer(module))
    assert upward == [], f"{module} ({LAYERS[_layer(module)]}) imports {upward} from above it"


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
    source.write_text(
        "def later():\n    from imgsim.cli import index\n    from imgsim.serve.web.errors import wants_json\n"
    )
    assert _imports(source, set(MODULES)) == {"imgsim.cli.index", "imgsim.serve.web.errors"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    source = MODULES[module].read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{module} has {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{module}.{node.name} is {length} lines long"


def test_create_app_only_wires():
    tree = ast.parse(MODULES["imgsim.serve.app"].read_text())
    create_app = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "create_app")
    assert create_app.end_lineno - create_app.lineno + 1 <= 60


def test_the_root_holds_only_the_entry_points():
    assert sorted(p.name for p in ROOT.glob("*.py")) == sorted(ENTRY_POINTS)
    for name in ENTRY_POINTS:
        text = (ROOT / name).read_text()
        assert text.count("\n") <= MAX_ENTRY_POINT_LINES, f"{name} is more than an entry point"
        assert "from imgsim." in text, f"{name} does not stand for code in the package"


def test_bench_and_tests_are_not_imported_by_the_package():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {n.split(".")[0] for n in names} & {"bench", "helpers", "servers", "conftest"}, module


GENERATED_OUTPUT_NAMES = {
    "build",
    "dist",
    "eggs",
    "lib",
    "lib64",
    "parts",
    "sdist",
    "var",
    "wheels",
    "env",
    "venv",
}


def test_no_package_folder_has_a_name_that_tools_treat_as_generated_output():
    """GitHub's Python .gitignore ignores build/, dist/, lib/ ... and clean targets delete them: the
    indexer once lived in imgsim/build/, which a fork starting from that template silently lost."""
    folders = {path.parent.name for path in MODULES.values()}
    assert not folders & GENERATED_OUTPUT_NAMES


def test_no_two_modules_of_the_package_share_a_name():
    """A name says what one module holds: ann.py twice, or compacting.py beside compaction.py, once
    left a reader to open both to learn which did what. The command line's modules are exempt from
    the near names: each is named for its subcommand (cli/search.py is ``imgsim search``)."""
    stems = sorted(path.stem for path in MODULES.values() if path.stem != "__init__")
    assert [stem for stem in set(stems) if stems.count(stem) > 1] == []
    named = sorted(
        path.stem
        for name, path in MODULES.items()
        if path.stem != "__init__" and not name.startswith("imgsim.cli")
    )
    assert [(a, b) for a in named for b in named if a < b and _root(a) == _root(b)] == []


SUFFIXES = ("ing", "ion", "ers", "er", "es", "s", "ed")


def _root(name: str) -> str:
    """A name without its grammatical endings: precisions, precision -> precis; indexer -> index."""
    for _ in range(2):
        name = next(
            (name[: -len(end)] for end in SUFFIXES if name.endswith(end) and len(name) > len(end) + 3), name
        )
    return name


def test_stored_arrays_are_opened_through_one_loader():
    """numpy parses a .npy header with ast.literal_eval, which CPython 3.11.7 cannot run in two
    threads at once (a search thread and another raised SystemError in a clean-clone CI run):
    durable.read_array opens them one at a time. .npz archives (``with np.load``) are read by
    builds and start-up, not beside searches."""
    opened_elsewhere = [
        f"{module}:{number}"
        for module, path in MODULES.items()
        if module != "imgsim.durable"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "np.load(" in line and not line.lstrip().startswith("with np.load(")
    ]
    assert opened_elsewhere == []


def test_every_name_a_bench_takes_from_the_package_exists():
    """Regression: bench/robustness.py read ``recall.EXACT`` after a refactor moved it (to
    index/depth.py), and the robust section failed at its end, after minutes of measuring; mypy
    checks the package, not the benches."""
    import importlib

    missing = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {
            alias.asname or alias.name: f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imgsim")
            for alias in node.names
        }
        for node in ast.walk(tree):
            named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if named and node.value.id in modules:
                try:
                    module = importlib.import_module(modules[node.value.id])
                except ImportError:
                    continue  # a name, not a module: its attributes are not looked up here
                if not hasattr(module, node.attr):
                    missing.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert missing == []
