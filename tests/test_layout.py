"""The house's rules, checked on the code itself: the application's library (bluegreen/client/)
never imports the operator's side, so an application that installs bluegreen to read its pointer
pulls in no controller, gate or config code (docs/design.md, "Layout")."""

from __future__ import annotations

import ast
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
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
             for path in files for line, module in imports_of(path) if not allowed(module, CLIENT_MAY_IMPORT)]
    assert wrong == []


def test_the_on_disk_contract_imports_only_itself_and_the_errors():
    """files/ is the floor both wings stand on: it may not reach up into engine, gates or lifecycle."""
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
             for path in sorted((PACKAGE / "files").rglob("*.py"))
             for line, module in imports_of(path) if not allowed(module, ("bluegreen.files", "bluegreen.errors"))]
    assert wrong == []


def test_the_rule_catches_an_operator_import(tmp_path):
    """The check itself can fail: a client module importing the controller is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from bluegreen.lifecycle.controller import Controller\n"
                   "from bluegreen import config\n")
    modules = sorted(m for _, m in imports_of(bad))
    assert modules == ["bluegreen.config", "bluegreen.lifecycle.controller"]
    assert not any(allowed(m, CLIENT_MAY_IMPORT) for m in modules)


MAX_MODULE_LINES = 500  # a module a reader can hold in mind; past it, it holds more than one job


def test_no_module_is_over_500_lines():
    sizes = {str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines())
             for path in sorted(PACKAGE.rglob("*.py"))}
    assert len(sizes) > 40  # every module was measured
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
