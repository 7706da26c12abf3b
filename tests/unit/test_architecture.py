"""The layering rule of docs/architecture.md, checked on every import of the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "latentreason"
DOC = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
LAYERS = [
    ["errors", "config", "storage"],
    ["components", "hooks"],
    ["models", "distributed"],
    ["decoding"],
    ["builtins"],
    ["assembly"],
    ["training", "evaluation"],
    ["api", "bench", "interop", "plugin", "testing"],
    ["cli", "__init__"],
]


def layer(module: str) -> int:
    """The layer of ``latentreason.<module>`` (its longest listed prefix)."""
    best = max((p for group in LAYERS for p in group if module == p or module.startswith(p + ".")), key=len)
    return next(i for i, group in enumerate(LAYERS) if best in group)


def runtime_imports(tree: ast.AST) -> list[str]:
    """``latentreason.*`` modules a module imports, outside ``if TYPE_CHECKING:`` blocks."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("latentreason"):
            folder = PACKAGE.joinpath(*node.module.split(".")[1:])
            for alias in node.names:  # a submodule imported from its package counts as that submodule
                submodule = (folder / f"{alias.name}.py").exists() or (folder / alias.name / "__init__.py").exists()
                found.append(f"{node.module}.{alias.name}" if submodule else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [m.removeprefix("latentreason.") for m in found]


def test_every_import_goes_up_the_layers_only():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = module.removesuffix(".__init__") if module != "__init__" else module
        for imported in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if layer(imported) > layer(module):
                problems.append(
                    f"{module} (layer {layer(module) + 1}) imports {imported} (layer {layer(imported) + 1})"
                )
    assert problems == []


def test_the_documented_layers_are_the_checked_ones():
    for i, group in enumerate(LAYERS, 1):
        line = next(line for line in DOC.splitlines() if line.startswith(f"{i}. "))
        assert all(f"`{name}`" in line for name in group if name != "__init__"), line


def test_every_subpackage_is_on_the_map():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        assert f"`latentreason/{folder.name}/`" in DOC
