"""docs/design.md is the design of record: every "hazard N" and "invariant N" the code, the tests,
the benchmarks and the README cite is a numbered entry there, every hazard there names a test that
exists, and the README links it (not the shared folder's DESIGN.md outside the repository, which
a clone does not have). Each check
is a function of a repository root, so the last tests run them on a made-up tree and show that
they fail when they should."""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = Path("docs") / "design.md"

# Where citations live. A citation may wrap across lines and comment markers ("(hazard\n  # 16)")
# and list several numbers ("hazards 3, 5 and 10"); test functions cite by name (test_hazard11_12_...).
CITING = ("bluegreen/**/*.py", "tests/**/*.py", "bench/**/*.py", "examples/**/*.py", "README.md", "docs/**/*.md")
CITATION = re.compile(r"\b(hazard|invariant)s?\b[\s#*]*(\d+(?:[\s#*]*(?:,|and|&)[\s#*]*\d+)*)", re.IGNORECASE)
TEST_NAME = re.compile(r"\btest_(hazard|invariant)(\d+(?:_\d+)*)_")
NUMBER = re.compile(r"\d+")
OUTSIDE = "../" + "shared/"  # spelled apart, so this file does not cite it


@dataclass(frozen=True)
class Hazard:
    number: int
    line: int
    tests: tuple[str, ...]  # `path` or `path::function` (a trailing * matches a prefix)


@dataclass(frozen=True)
class Design:
    hazards: dict[int, Hazard]
    invariants: dict[int, int]  # number -> line in the doc
    problems: tuple[str, ...]  # duplicate or missing numbers


def sections(text: str) -> dict[str, list[tuple[int, str]]]:
    """The doc's `## ` sections by heading, each as (line number, line) pairs."""
    found: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), [])
        else:
            current.append((number, line))
    return found


def read_design(root: Path) -> Design:
    """Invariants are the numbered list under "## Invariants ..."; hazards the rows of the table
    under "## Hazards ..." (`| N | hazard | answer | tests |`), the tests in backticks."""
    parts = sections((root / DOC).read_text(encoding="utf-8"))
    invariants: dict[int, int] = {}
    hazards: dict[int, Hazard] = {}
    problems: list[str] = []
    for heading, lines in parts.items():
        if heading.startswith("Invariants"):
            for number, line in lines:
                if m := re.match(r"(\d+)\. ", line):
                    if int(m.group(1)) in invariants:
                        problems.append(f"{DOC}:{number}: invariant {m.group(1)} numbered twice")
                    invariants[int(m.group(1))] = number
        if heading.startswith("Hazards"):
            for number, line in lines:
                if m := re.match(r"\|\s*(\d+)\s*\|", line):
                    cells = [c.strip() for c in line.strip().strip("|").split("|")]
                    if int(m.group(1)) in hazards:
                        problems.append(f"{DOC}:{number}: hazard {m.group(1)} numbered twice")
                    hazards[int(m.group(1))] = Hazard(
                        int(m.group(1)), number, tuple(re.findall(r"`([^`]+)`", cells[-1]))
                    )
    for kind, numbers in (("invariant", invariants), ("hazard", hazards)):
        missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
        if not numbers or missing:
            problems.append(f"{DOC}: {kind}s are not numbered 1..N (none, or missing {missing})")
    return Design(hazards, invariants, tuple(problems))


def citations(root: Path) -> list[tuple[str, str, int]]:
    """(file:line, kind, number) of every hazard/invariant citation under root."""
    found = []
    for pattern in CITING:
        for path in sorted(root.glob(pattern)):
            if ".venv" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            for regex in (CITATION, TEST_NAME):
                for m in regex.finditer(text):
                    line = text.count("\n", 0, m.start()) + 1
                    for number in NUMBER.findall(m.group(2)):
                        found.append((f"{path.relative_to(root)}:{line}", m.group(1).lower(), int(number)))
    return found


def unresolved_citations(root: Path) -> list[str]:
    design = read_design(root)
    known = {"hazard": design.hazards, "invariant": design.invariants}
    return [
        f"{where}: {kind} {number} is not in {DOC}"
        for where, kind, number in citations(root)
        if number not in known[kind]
    ]


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def missing_tests(root: Path) -> list[str]:
    """Every hazard names at least one test under tests/; every file it names exists; every test
    function it names (a trailing * is a prefix) is defined in that file."""
    design = read_design(root)
    wrong = list(design.problems)
    for hazard in design.hazards.values():
        where = f"{DOC}:{hazard.line}: hazard {hazard.number}"
        if not any(ref.startswith("tests/") for ref in hazard.tests):
            wrong.append(f"{where} names no test under tests/ ({hazard.tests})")
        for ref in hazard.tests:
            file, _, function = ref.partition("::")
            path = root / file
            if not file.endswith(".py") or not path.is_file():
                wrong.append(f"{where}: {file} is not a file of the repository (name it from its root)")
                continue
            if function:
                names = functions_in(path)
                found = any(n.startswith(function[:-1]) for n in names) if function.endswith("*") else function in names
                if not found:
                    wrong.append(f"{where}: {file} defines no {function}")
    return wrong


def readme_links(root: Path) -> list[str]:
    wrong = []
    readme = (root / "README.md").read_text(encoding="utf-8")
    if "](docs/design.md)" not in readme:
        wrong.append("README.md does not link docs/design.md")
    for pattern in CITING[:-1]:  # the README and the code; the doc may tell its own history
        for path in sorted(root.glob(pattern)):
            if ".venv" not in path.parts and OUTSIDE in path.read_text(encoding="utf-8"):
                wrong.append(f"{path.relative_to(root)} still refers to {OUTSIDE}")
    return wrong


# -- the repository ---------------------------------------------------------------------------------
def test_the_design_numbers_its_invariants_and_hazards():
    design = read_design(REPO)
    assert design.problems == ()
    assert len(design.invariants) >= 8 and len(design.hazards) >= 21


def test_every_hazard_and_invariant_cited_is_in_the_design():
    found = citations(REPO)
    assert len(found) > 100  # the scan reads the real tree (about 150 citations today)
    assert unresolved_citations(REPO) == []


def test_every_hazard_names_a_test_that_exists():
    assert missing_tests(REPO) == []


def test_the_readme_links_the_design_in_the_repository():
    assert readme_links(REPO) == []


# -- the checks can fail ----------------------------------------------------------------------------
def made_up_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copy(REPO / DOC, root / DOC)
    shutil.copy(REPO / "README.md", root / "README.md")
    for ref in {r.partition("::")[0] for h in read_design(REPO).hazards.values() for r in h.tests}:
        (root / ref).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / ref, root / ref)
    return root


def test_a_made_up_citation_is_caught(tmp_path):
    root = made_up_tree(tmp_path)
    hazard, invariant = len(read_design(REPO).hazards) + 78, len(read_design(REPO).invariants) + 34
    (root / "bluegreen").mkdir()
    (root / "bluegreen" / "x.py").write_text(
        f'"""Bounded (hazard 1, invariant {invariant}).\n\nSee (hazards 16 and\n    {hazard}).\n"""\n'
    )
    (root / "tests" / "test_x.py").write_text(
        f"def test_hazard{hazard + 1}_made_up():\n    # hazard\n    # {hazard + 2}\n"
    )
    assert unresolved_citations(root) == [
        f"bluegreen/x.py:1: invariant {invariant} is not in {DOC}",
        f"bluegreen/x.py:3: hazard {hazard} is not in {DOC}",
        f"tests/test_x.py:2: hazard {hazard + 2} is not in {DOC}",
        f"tests/test_x.py:1: hazard {hazard + 1} is not in {DOC}",
    ]


def test_a_hazard_without_its_test_is_caught(tmp_path):
    root = made_up_tree(tmp_path)
    assert missing_tests(root) == []
    text = (root / DOC).read_text()
    text = text.replace("`tests/test_fk_gate.py`", "`tests/test_no_such_file.py`")
    text = text.replace("`tests/test_migration_reach.py`", "`tests/test_migration_reach.py::test_no_such_function`")
    (root / DOC).write_text(text)
    wrong = missing_tests(root)
    assert len(wrong) == 2, wrong  # 15: a function that is not there; 17: a file that is not
    assert any("hazard 15" in w and "defines no test_no_such_function" in w for w in wrong)
    assert any("hazard 17" in w and "test_no_such_file.py is not a file" in w for w in wrong)


def test_a_readme_pointing_outside_the_repository_is_caught(tmp_path):
    root = made_up_tree(tmp_path)
    assert readme_links(root) == []
    readme = (root / "README.md").read_text().replace("](docs/design.md)", f"]({OUTSIDE}DESIGN.md)")
    (root / "README.md").write_text(readme)
    assert readme_links(root) == ["README.md does not link docs/design.md", f"README.md still refers to {OUTSIDE}"]


def undocumented_errors(root: Path) -> list[str]:
    """Error classes of bluegreen/errors.py that the design's "Errors by cause" table does not list."""
    text = (root / DOC).read_text()
    start = text.index("### Errors by cause")
    table = text[start : text.index("\n## ", start)]
    tree = ast.parse((root / "bluegreen" / "errors.py").read_text())
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef) and node.name != "BluegreenError"]
    return [name for name in classes if f"`{name}`" not in table and f"| {name} |" not in table]


def test_every_error_class_is_in_the_design(tmp_path):
    assert undocumented_errors(REPO) == []
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    (copy / "bluegreen").mkdir()
    shutil.copy(REPO / DOC, copy / DOC)
    (copy / "bluegreen" / "errors.py").write_text(
        (REPO / "bluegreen" / "errors.py").read_text() + "\n\nclass MadeUpCause(OperationFailed):\n    pass\n"
    )
    assert undocumented_errors(copy) == ["MadeUpCause"]
