"""Imports flow one way: catalog -> ingestion stages -> feature_repo -> equity -> jobs and CLI.

Every import statement of the project's own modules (module level or inside a function) is
read from the source, so a lazy import cannot hide an upstream edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top. A module may import its own layer and the layers below it, never above.
LAYERS = [
    "sdoh_sources",
    "ingestion.core",
    "ingestion.sources",
    "ingestion.derive",
    "ingestion.geo",
    "ingestion.gate",
    "feature_repo.definitions",
    "feature_repo.serving",
    "equity",
    "ingestion.demo",
    "ingestion.jobs",
    "ingestion.cli",
]
PACKAGES = ("sdoh_sources", "ingestion", "feature_repo", "equity")
# A top-level package re-exports its public names from its stages: it sits with the highest.
PACKAGE_LAYERS = {"ingestion": "ingestion.jobs", "feature_repo": "feature_repo.serving"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found[".".join(path.relative_to(ROOT).with_suffix("").parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int | None:
    module = PACKAGE_LAYERS.get(module.removesuffix(".__init__"), module)
    ranks = [i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + ".")]
    return ranks[-1] if ranks else None


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of our packages."""
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module[:-9]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES or sub + ".__init__" in MODULES:
                    out.append((sub, [], node.lineno))
                else:
                    out.append((base, [alias.name], node.lineno))
    return [(m, names, line) for m, names, line in out if m.split(".")[0] in PACKAGES]


EDGES = [(module, *imp) for module, path in MODULES.items() for imp in _imports(module, path)]


def test_every_module_sits_in_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


def test_no_import_points_upstream():
    upstream = [f"{module} (line {line}) imports {target}"
                for module, target, _, line in EDGES
                if _layer(target) is not None and _layer(module) is not None
                and _layer(target) > _layer(module)]
    assert upstream == []


def test_no_private_name_is_imported_from_another_module():
    private = [f"{module} (line {line}) imports {name} from {target}"
               for module, target, names, line in EDGES for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


@pytest.mark.parametrize("target", ["ingestion.derive.acs", "feature_repo.serving.online",
                                    "feature_repo"])
def test_the_checker_sees_an_upstream_import(target, tmp_path):
    """A check that cannot fail is no check: a gate importing a serving module is flagged."""
    source = tmp_path / "probe.py"
    source.write_text(f"def f():\n    from {target} import something\n", encoding="utf-8")
    MODULES["ingestion.core.probe"] = source
    try:
        (imported, _, _), = _imports("ingestion.core.probe", source)
    finally:
        del MODULES["ingestion.core.probe"]
    assert _layer(imported) > _layer("ingestion.core.probe")
