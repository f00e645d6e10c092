"""The project's habits, checked where they are written down: one version, the py.typed marker,
pinned dev tools, every `type: ignore` with its code and reason, and CI running the README's
test command word for word. (.ci/run builds the wheel itself and checks its contents.)
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

import tinygrad_rnn

tomllib = pytest.importorskip("tomllib")  # the standard library's from Python 3.11

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinygrad_rnn"


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once_in_the_package(pyproject):
    project = pyproject["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "tinygrad_rnn.__version__"}
    assigned = [node for node in ast.parse((PACKAGE / "__init__.py").read_text()).body
                if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "__version__" for t in node.targets)]
    assert len(assigned) == 1 and isinstance(assigned[0].value, ast.Constant)  # a literal
    assert re.fullmatch(r"\d+\.\d+\.\d+", tinygrad_rnn.__version__)


def test_the_package_ships_a_py_typed_marker(pyproject):
    assert (PACKAGE / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["tinygrad_rnn"]


def test_the_dev_tools_are_pinned_exactly(pyproject):
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    names = {re.split(r"[=<>!~ ]", req)[0] for req in dev}
    assert {"ruff", "mypy", "build", "twine"} <= names
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", req) for req in dev), dev


def test_mypy_checks_the_package_with_untyped_defs_disallowed(pyproject):
    mypy = pyproject["tool"]["mypy"]
    assert mypy["files"] == ["tinygrad_rnn"] and mypy["disallow_untyped_defs"] is True
    assert "ignore-without-code" in mypy["enable_error_code"]


def test_every_type_ignore_names_its_code_and_says_why():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "type: ignore" in line:
                found.append(line)
                where = f"{path.relative_to(ROOT)}:{number}"
                assert re.search(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S", line), where
    assert len(found) <= 5, found  # a few, each justified on its line


def _readme_test_command() -> str:
    setup = (ROOT / "README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    after = setup.split("Run the tests:", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", after, re.DOTALL).group(1).strip()


def test_ci_runs_the_readme_test_command_word_for_word():
    command = _readme_test_command()
    assert "pytest" in command and "pip install" in command
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in lines
    for tool in ("python -m ruff check", "python -m mypy", "python -m build",
                 "python -m twine check"):
        assert any(line.startswith(tool) for line in lines), tool
