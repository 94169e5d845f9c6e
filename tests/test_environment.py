"""environment.yml (the conda route) lists what pyproject.toml and the Makefile install."""

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
#: What the conda environment needs beyond the Python packages: the interpreter, pip itself and
#: Node.js for the book's vendored JavaScript.
TOOLS = {"python", "pip", "nodejs"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.lower())


def _environment() -> tuple[dict[str, str], list[str]]:
    """Name -> version specifier of every package environment.yml installs, and its editable
    installs."""
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    entries, editable = [], []
    for item in spec["dependencies"]:
        if isinstance(item, dict):
            for line in item["pip"]:
                (editable if line.startswith("-e ") else entries).append(line)
        else:
            entries.append(item)
    packages = {}
    for entry in entries:
        conda = re.fullmatch(r"([A-Za-z0-9_.-]+)=([0-9.]+)", entry)  # conda's `name=version`
        requirement = Requirement(f"{conda[1]}=={conda[2]}.*" if conda else entry)
        packages[_name(requirement.name)] = str(requirement.specifier)
    return packages, editable


def _pyproject() -> tuple[dict[str, str], dict]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for extra in ("dev", "book")
                                       for r in project["optional-dependencies"][extra]]
    return {_name(Requirement(r).name): str(Requirement(r).specifier) for r in lines}, project


def test_environment_lists_every_pyproject_package_with_the_same_range():
    env, _ = _environment()
    wanted, _ = _pyproject()
    python_packages = {name: spec for name, spec in env.items() if name not in TOOLS}
    assert set(python_packages) == set(wanted), (
        f"only in environment.yml: {sorted(set(python_packages) - set(wanted))}; "
        f"only in pyproject.toml: {sorted(set(wanted) - set(python_packages))}")
    for name in sorted(wanted):
        if name in ("torch", "torchvision"):
            continue  # pinned exactly, as by the Makefile (next test)
        assert SpecifierSet(env[name]) == SpecifierSet(wanted[name]), name


def test_torch_pins_and_python_match_the_makefile_and_pyproject():
    env, editable = _environment()
    wanted, project = _pyproject()
    makefile = (ROOT / "Makefile").read_text()
    for name in ("torch", "torchvision"):
        pin = re.search(rf'"{name}==([0-9.]+)"', makefile)[1]
        assert env[name] == f"=={pin}", name
        assert pin in SpecifierSet(wanted[name]), name
    python = env["python"].removeprefix("==").removesuffix(".*")
    assert f"{python}.0" in SpecifierSet(project["requires-python"])
    assert editable == ["-e .[dev,book]"]


#: Subpackages whose modules the package map lists one by one (``experiments.manifest``); any
#: other is one row (``ladder.plots.grids`` is ``plots``).
LISTED_SUBPACKAGES = ("experiments",)


def _module_name(parts: Sequence[str]) -> str:
    """How the package map names the module ``ladder.<parts>``."""
    if parts[0] in LISTED_SUBPACKAGES and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _ladder_imports(path: Path) -> set[str]:
    """The ``ladder`` modules ``path`` imports at run time (not under ``if TYPE_CHECKING:``), named
    as the package map names them (:func:`_module_name`)."""
    import ast

    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ladder."):
            found.add(_module_name(node.module.split(".")[1:]))
        elif isinstance(node, ast.ImportFrom) and node.module == "ladder":  # from ladder import x
            found |= {_module_name([a.name]) for a in node.names if not a.name.startswith("__")}
        elif isinstance(node, ast.Import):
            found |= {_module_name(a.name.split(".")[1:]) for a in node.names
                      if a.name.startswith("ladder.")}
    return found


def test_contributing_package_map_lists_each_modules_imports():
    """CONTRIBUTING.md's "depends on" column is what the modules import (rows of the form
    | `ladder/x.py` | concept | a, b |, a module of ``ladder.experiments`` named
    `ladder/experiments/x.py` and listed as ``experiments.x``; the plots and CLI rows are described
    in words)."""
    root = Path(__file__).resolve().parent.parent
    rows = re.findall(r"^\| (`ladder/[\w/]+\.py`(?:, `ladder/[\w/]+\.py`)*) \| [^|]+ \| ([^|]+) \|$",
                      (root / "CONTRIBUTING.md").read_text(), re.M)
    assert len(rows) > 15
    wrong = {}
    for modules, listed in rows:
        paths = [root / m.strip("`") for m in modules.split(", ")]
        names = {_module_name(p.relative_to(root / "ladder").with_suffix("").parts) for p in paths}
        actual = set().union(*(_ladder_imports(p) for p in paths)) - names
        stated = set() if listed.strip() == "-" else {d.strip() for d in listed.split(",")}
        if stated != actual:
            wrong[modules] = sorted(actual)
    assert wrong == {}


def test_every_module_has_an_api_page_in_the_index_and_the_toc():
    """book/api/ladder.<module>.md documents each module of the package (autodoc), book/api.md
    links it and _toc.yml builds it; a new module without them fails here, not silently."""
    modules = sorted(
        ".".join(("ladder", *p.relative_to(ROOT / "ladder").with_suffix("").parts)).removesuffix(
            ".__init__")
        for p in (ROOT / "ladder").rglob("*.py")
        if p.name != "__main__.py" and p != ROOT / "ladder" / "__init__.py")
    index = (ROOT / "book" / "api.md").read_text()
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    (api,) = [c for part in toc["parts"] for c in part["chapters"] if c["file"] == "book/api"]
    built = {s["file"].removeprefix("book/api/") for s in api["sections"]}
    for name in modules:
        page = (ROOT / "book" / "api" / f"{name}.md").read_text()
        assert f".. automodule:: {name}\n" in page, name
        assert f"](api/{name}.md)" in index, name
    assert built == set(modules)
