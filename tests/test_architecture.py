"""The package's import structure: which parts may import which, and no import circles.

Read from the source (module-level imports, ``import x`` and ``from x import y``, including those
under ``if TYPE_CHECKING``), so a violation fails here before it fails anyone at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("jepa_wm", "planners", "envs")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every package module -> the package modules it imports at module level."""
    modules = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.parse(path.read_text()).body:
            nodes = [node] + (list(ast.walk(node)) if isinstance(node, ast.If) else [])
            for item in nodes:
                if isinstance(item, ast.Import):
                    found |= {alias.name for alias in item.names}
                elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
                    found |= {f"{item.module}.{alias.name}" for alias in item.names} | {item.module}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _prefix(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_circles():
    graph, state, circles = _imports(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_planners_know_nothing_of_models_or_simulators():
    graph = _imports()
    assert {m: sorted(t for t in targets if _prefix(t, "jepa_wm", "envs"))
            for m, targets in graph.items() if _prefix(m, "planners")} == {m: [] for m in graph if _prefix(m, "planners")}


def test_the_planning_core_imports_no_plug_in_tool_or_diagnostic():
    """Plug-ins, evaluation tools and privileged diagnostics attach to the core; it never reaches for them."""
    graph = _imports()
    core = [m for m in graph if _prefix(m, "jepa_wm.planning", "jepa_wm.protocols", "jepa_wm.world_model",
                                        "jepa_wm.predictor", "jepa_wm.encoders", "jepa_wm.nn")
            and m != "jepa_wm.encoders.latent_cache"]  # the training data's latent cache
    bad = {m: sorted(t for t in graph[m] if _prefix(t, "jepa_wm.plugins", "jepa_wm.evaluation", "jepa_wm.diagnostics",
                                                      "jepa_wm.predictor_training", "jepa_wm.pretrain", "jepa_wm.data"))
           for m in core}
    assert {m: targets for m, targets in bad.items() if targets} == {}


def test_only_diagnostics_import_diagnostics():
    graph = _imports()
    importers = sorted(m for m, targets in graph.items()
                       if not _prefix(m, "jepa_wm.diagnostics") and any(_prefix(t, "jepa_wm.diagnostics") for t in targets))
    assert importers == []


def test_model_code_imports_no_training_code():
    graph = _imports()
    model = [m for m in graph if _prefix(m, "jepa_wm.world_model", "jepa_wm.predictor", "jepa_wm.encoders.frozen",
                                         "jepa_wm.encoders.vit", "jepa_wm.nn")
             or m.endswith((".reader", ".dynamics", ".cost", ".model")) and _prefix(m, "jepa_wm.plugins")]
    training = ("jepa_wm.predictor_training", "jepa_wm.training.loop", "jepa_wm.training.distributed",
                "jepa_wm.pretrain", "jepa_wm.plugins.object_model.train", "jepa_wm.plugins.object_reader.train",
                "jepa_wm.plugins.gripper_reader.train", "jepa_wm.plugins.object_model.play")
    assert {m: sorted(t for t in graph[m] if _prefix(t, *training)) for m in model
            if any(_prefix(t, *training) for t in graph[m])} == {}
