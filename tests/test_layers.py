"""The layers are a contract: read every import of `service/` and `trainer/` with `ast` and check it.

- no import circle among service modules (imports inside functions count too);
- the trainer imports no service code;
- the serving side (`service.serving`) imports nothing of the sleep side (`service.sleep`);
- the store imports no service code outside the store but config and errors;
- API routers do not import each other (they share `deps` and `schemas`);
- no service or trainer module over 400 lines and no function over 80 without a `Length:` reason in its
  docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.servers import REPO

ROUTER_HELPERS = {
    "service.api", "service.api.deps", "service.api.schemas", "service.api.admin_session", "service.api.pages",
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules("service") | _modules("trainer")


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (`a.b.c` may be module `a.b` with attribute `c`)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in map(_resolve, names) if target and target != module}
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _breaking(source_package: str, forbidden) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _under(module, source_package)
        for target in targets
        if forbidden(target)
    )


def test_no_import_circle_among_service_modules():
    graph = {m: {t for t in ts if _under(t, "service")} for m, ts in GRAPH.items() if _under(m, "service")}
    # A package's __init__ is imported on the way to any of its modules; only its own imports count.
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_trainer_imports_no_service_code():
    assert _breaking("trainer", lambda target: _under(target, "service")) == []


def test_the_serving_side_imports_nothing_of_the_sleep_side():
    assert _breaking("service.serving", lambda target: _under(target, "service.sleep")) == []


def test_the_store_imports_only_the_store_config_and_errors():
    allowed = ("service.store", "service.config", "service.errors")
    outside = [t for t in MODULES if _under(t, "service") and not any(_under(t, a) for a in allowed)]
    assert _breaking("service.store", lambda target: target in outside) == []


def test_api_routers_do_not_import_each_other():
    routers = {m for m in MODULES if _under(m, "service.api") and m not in ROUTER_HELPERS}
    assert routers, "no routers found under service/api"
    assert _breaking("service.api", lambda target: target in routers) == []


def _has_reason(node) -> bool:
    return "Length:" in (ast.get_docstring(node) or "")


def test_modules_and_functions_stay_short_or_say_why():
    too_long = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES and not _has_reason(tree):
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not _has_reason(node):
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []
