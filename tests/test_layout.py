"""The package's import graph: no cycles, imports one way (nodes on top, nothing imports nodes), llm and
attention independent, and only nodes importing ComfyUI at import time. Read from the source (AST)."""

from __future__ import annotations

import ast
from pathlib import Path

from comfy_harness import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "laser_story"
COMFY_MODULES = {"comfy", "comfy_extras", "folder_paths", "nodes", "server", "execution", "latent_preview",
                 "comfy_execution", "comfy_api"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(pack modules imported at import time, top-level names of other modules imported at import time)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    ours, others = set(), set()
    for node in ast.parse(path.read_text()).body:  # module level only: function-level imports are lazy
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                ours |= {f"{target}.{a.name}" for a in node.names} | {target}
            elif node.module.split(".")[0] == "laser_story":
                ours |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others |= {a.name.split(".")[0] for a in node.names}
    return ours, others


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges, external = {}, {}
    for name, path in files.items():
        ours, others = imports(path)
        edges[name] = {m for m in ours if m in files and m != name}
        external[name] = others
    return edges, external


def test_no_import_cycles():
    edges, _ = graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_imports_go_one_way():
    edges, external = graph()
    for name, targets in edges.items():
        layer = name.split(".")[1] if "." in name else ""
        for target in targets:
            target_layer = target.split(".")[1] if target.count(".") else ""
            assert target_layer != "nodes" or layer == "nodes", f"{name} imports {target}: nothing imports nodes"
            assert {layer, target_layer} != {"llm", "attention"}, f"{name} imports {target}: llm and attention are independent"
            assert target_layer != "training" or layer == "training", f"{name} imports {target}: runtime code needs no trainer"
        if layer != "nodes":
            assert not external[name] & COMFY_MODULES, f"{name} imports ComfyUI at import time"
