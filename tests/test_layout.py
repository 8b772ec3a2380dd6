"""The house's rules, checked on the code itself: the application's library (bluegreen/client/)
never imports the operator's side, so an application that installs bluegreen to read its pointer
pulls in no controller, gate or config code (docs/design.md, "Layout")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bluegreen"

# What the client may use: itself, the on-disk contract, SQLite access, the error types.
CLIENT_MAY_IMPORT = ("bluegreen.client", "bluegreen.files", "bluegreen.engine.db", "bluegreen.errors")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every bluegreen module a file imports, at any depth (lazy imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bluegreen":
                found += [(node.lineno, f"bluegreen.{alias.name}") for alias in node.names]
            elif node.module.startswith("bluegreen."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("bluegreen")]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_client_imports_nothing_from_the_operator_side():
    files = sorted((PACKAGE / "client").rglob("*.py"))
    assert len(files) >= 5, files  # the rule is checked on the client's real modules
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in files
        for line, module in imports_of(path)
        if not allowed(module, CLIENT_MAY_IMPORT)
    ]
    assert wrong == []


def test_the_django_backend_stands_on_the_client_and_django_alone():
    """bluegreen/django/ (the backend an application names in settings) uses what the client may,
    itself, and Django: no operator code, and no third-party library but Django."""
    files = sorted((PACKAGE / "django").rglob("*.py"))
    assert len(files) >= 3, files
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in files
        for line, module in imports_of(path)
        if not allowed(module, (*CLIENT_MAY_IMPORT, "bluegreen.django"))
    ]
    assert wrong == []
    others = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                others |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                others.add(node.module.split(".")[0])
    assert "django" in others
    assert others - set(sys.stdlib_module_names) - {"__future__"} == {"bluegreen", "django"}


def test_the_on_disk_contract_imports_only_itself_and_the_errors():
    """files/ is the floor both wings stand on: it may not reach up into engine, gates or lifecycle."""
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in sorted((PACKAGE / "files").rglob("*.py"))
        for line, module in imports_of(path)
        if not allowed(module, ("bluegreen.files", "bluegreen.errors"))
    ]
    assert wrong == []


def test_the_rule_catches_an_operator_import(tmp_path):
    """The check itself can fail: a client module importing the controller is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from bluegreen.lifecycle.controller import Controller\nfrom bluegreen import config\n"
    )
    modules = sorted(m for _, m in imports_of(bad))
    assert modules == ["bluegreen.config", "bluegreen.lifecycle.controller"]
    assert not any(allowed(m, CLIENT_MAY_IMPORT) for m in modules)


MAX_MODULE_LINES = 500  # a module a reader can hold in mind; past it, it holds more than one job


def test_no_module_is_over_500_lines():
    sizes = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert len(sizes) > 40  # every module was measured
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


# Wings from the floor up: a module imports only its own wing or a lower one (never up, so no
# wing can form a loop with another). client stands beside engine, on files alone.
FLOOR = {
    "errors": 0,
    "results": 0,
    "files": 1,
    "engine": 2,
    "client": 2,
    "config": 3,
    "sqlalchemy": 3,  # the ORM integrations stand on the client
    "django": 3,
    "gates": 4,
    "replication": 4,  # Litestream; below reports (status) and lifecycle (the wait before a swap)
    "reports": 5,
    "lifecycle": 6,
    "tools": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 9,
}


def wing_of(module: str) -> str:
    """bluegreen.engine.capture -> engine; bluegreen.config -> config; bluegreen -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def test_every_import_goes_to_its_own_wing_or_a_lower_one():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert {wing_of(module_of(p)) for p in modules} <= set(FLOOR), "a new wing needs its floor here"
    upward = [
        f"{module_of(path)}:{line} -> {module}"
        for path in modules
        for line, module in imports_of(path)
        if module.startswith("bluegreen.")
        and module != "bluegreen.__version__"
        and wing_of(module) != wing_of(module_of(path))
        and FLOOR[wing_of(module)] >= FLOOR[wing_of(module_of(path))]
    ]
    assert upward == []


def imported_modules(path: Path) -> set[str]:
    """The bluegreen modules a file imports, `from bluegreen.engine import capture` resolved to the
    module bluegreen.engine.capture (not the package's face)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bluegreen") and not node.level:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                found.add(dotted if (PACKAGE.parent / (dotted.replace(".", "/") + ".py")).exists() else node.module)
    return found


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append(trail[trail.index(node) :] + [node])
        elif node not in done:
            for nxt in sorted(graph.get(node, ())):
                visit(nxt, trail + [node])
            done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return cycles


def test_no_modules_import_each_other_even_through_others():
    graph = {module_of(path): imported_modules(path) - {module_of(path)} for path in PACKAGE.rglob("*.py")}
    assert sum(map(len, graph.values())) > 150  # the imports were read
    assert cycles_in(graph) == []
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]  # the check can fail
