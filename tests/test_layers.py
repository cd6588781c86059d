"""The stage order of docs/architecture.md, held against every import in pipeline/.

Reads the source of every module under pipeline/ (imports at the top, inside functions and
under TYPE_CHECKING alike); writes nothing. A module may import its own layer and those below
it, never one above; packages import one another without a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pipeline"

# Lowest first. A name stands for the module or the package of that dotted path; a module
# belongs to the longest name that is a prefix of it. Within run/, the look-ups (reuse) sit
# below what acts on them (booting, the walk, the lead-in, the run itself).
LAYERS: list[list[str]] = [
    ["pipeline", "pipeline.paths", "pipeline.progress", "pipeline.locking",
     "pipeline.options", "pipeline.errors"],
    ["pipeline.intake"],
    ["pipeline.build"],
    ["pipeline.boot"],
    ["pipeline.record"],
    ["pipeline.report"],
    ["pipeline.fanout"],
    ["pipeline.run.reuse"],
    ["pipeline.run"],
    ["pipeline.cli", "pipeline.cli_plan", "pipeline.cli_tree", "pipeline.doctor"],
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def owner(module: str) -> str:
    """The layer name a module falls under (the longest prefix of it in RANK)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py")


def imports(path: Path) -> set[str]:
    """Every pipeline module the file imports, anywhere in it."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names
                    if (PKG.parent / f"{base}.{a.name}".replace(".", "/")).with_suffix(".py")
                    .is_file() or (PKG.parent / f"{base}.{a.name}".replace(".", "/")).is_dir()}
    return {m for m in out if m == "pipeline" or m.startswith("pipeline.")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PKG.rglob("*.py"))}


def test_every_module_has_a_layer():
    for module in graph():
        owner(module)


def test_no_stage_imports_a_higher_one():
    bad = []
    for module, targets in graph().items():
        for target in targets:
            if RANK[owner(target)] > RANK[owner(module)]:
                bad.append(f"{module} imports {target} ({owner(target)} is above "
                           f"{owner(module)})")
    assert not bad, "\n".join(sorted(bad))


def package_of(module: str) -> str:
    """pipeline.run.walk -> pipeline.run; a top-level module is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        src = package_of(module)
        edges.setdefault(src, set())
        edges[src] |= {package_of(t) for t in targets if package_of(t) not in (src, "pipeline")}
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [node, nxt])
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


def test_the_doc_states_this_order():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert "intake → build → boot → record → report → fanout → run" in doc
