"""The project as a package: pyproject.toml agrees with the requirements files and with what the code imports, and
the wheel (and an editable install) works from outside the repository.

The install tests are offline: the wheel and the sdist are built with ``python -m build --no-isolation``, and the
fresh virtual environment sees this environment's packages through a ``.pth`` file, so ``pip install --no-index``
resolves the wheel's declared dependencies against what is installed here (a range that does not fit fails) without
fetching anything.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
PACKAGE_SOURCES = sorted((REPO_ROOT / "svitpipe").rglob("*.py")) + [REPO_ROOT / "svit_internvl.py", REPO_ROOT / "upload.py"]
# Imports that only some features need: module -> (the extra that declares it, its distribution). Named here, not
# looked up, since an optional dependency need not be installed (the README's set-up leaves Ray out).
OPTIONAL_IMPORTS = {"torch": ("train", "torch"), "ray": ("ray", "ray"),
                    "cv2": ("fast-decode", "opencv-python-headless")}


def requirement_set(lines) -> set[str]:
    return {str(Requirement(line)) for line in lines}


def requirements_file(name: str) -> set[str]:
    lines = []
    for line in (REPO_ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r "):
            lines.append(line)
    return requirement_set(lines)


@pytest.mark.parametrize(
    "file_name, declared",
    [
        ("requirements.txt", PROJECT["dependencies"]),
        ("requirements-test.txt", PROJECT["optional-dependencies"]["test"]),
        ("requirements-ray.txt", PROJECT["optional-dependencies"]["ray"]),
        ("requirements-fast-decode.txt", PROJECT["optional-dependencies"]["fast-decode"]),
    ],
)
def test_requirements_files_agree_with_pyproject(file_name, declared):
    assert requirements_file(file_name) == requirement_set(declared)


def test_requirements_test_builds_on_the_runtime_requirements():
    assert "-r requirements.txt" in (REPO_ROOT / "requirements-test.txt").read_text(encoding="utf-8").splitlines()


def third_party_imports() -> dict[str, set[str]]:
    """``top-level module -> {"module", "function"}``: where the package imports it (at module level or inside a
    function, which is how optional dependencies are imported)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE_SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("svitpipe", "svit_internvl", "upload"):
                    continue
                found.setdefault(top, set()).add("module" if id(node) in top_level else "function")
    return found


def distribution_of(module: str) -> str:
    names = importlib.metadata.packages_distributions().get(module)
    assert names, f"no installed distribution provides {module!r}"
    return Requirement(names[0]).name.lower().replace("_", "-")


def declared_names(requirements) -> set[str]:
    return {Requirement(line).name.lower().replace("_", "-") for line in requirements}


def test_every_import_of_the_package_is_declared_and_every_dependency_is_used():
    runtime = declared_names(PROJECT["dependencies"])
    imports = third_party_imports()
    used = set()
    for module, where in sorted(imports.items()):
        if module in OPTIONAL_IMPORTS:
            extra, distribution = OPTIONAL_IMPORTS[module]
            assert where == {"function"}, f"{module} is optional and must be imported inside the functions that use it"
            assert distribution in declared_names(PROJECT["optional-dependencies"][extra]), f"{module} not in [{extra}]"
        else:
            distribution = distribution_of(module)
            assert distribution in runtime, f"the package imports {module} ({distribution}), which it does not declare"
            used.add(distribution)
    assert runtime - used == set(), f"declared but never imported: {runtime - used}"


def test_console_script_and_modules_are_declared():
    assert PROJECT["scripts"] == {"svit-internvl": "svitpipe.cli:main"}
    assert PYPROJECT["tool"]["setuptools"]["py-modules"] == ["svit_internvl", "upload"]


# --------------------------------------------------------------------------
# Installs into a fresh virtual environment, used from outside the repository
# --------------------------------------------------------------------------


def copy_of_the_project(dest: Path) -> Path:
    """The project's own files (what a clean clone holds), so nothing built or cached here leaks into the wheel."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".ruff_cache", ".data")
    shutil.copytree(REPO_ROOT, dest, ignore=ignore)
    return dest


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this one's packages (but not the repository) through a ``.pth`` file."""
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_svit_internvl_test_parent.pth").write_text("\n".join(sorted(parent)) + "\n", encoding="utf-8")
    # Python < 3.12 seeds a venv with an old setuptools that would hide the build backend installed here.
    shutil.rmtree(Path(purelib, "setuptools"), ignore_errors=True)
    for stale in Path(purelib).glob("setuptools-*.dist-info"):
        shutil.rmtree(stale)
    return python


def run(command, cwd, **kwargs) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, env=env, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


TRAINING_SNIPPET = """
import sys
from datasets import load_dataset
from svitpipe.training.chat_format import to_chat_messages_fn
from svitpipe.training.boxes import render_referring_text
import svitpipe

stream = load_dataset(sys.argv[1], "referring", split="train", streaming=True)
row = next(iter(stream.map(to_chat_messages_fn("referring"))))
assert row["messages"][0]["role"] == "user", row["messages"][0]
print(svitpipe.__file__)
"""


@pytest.fixture(scope="module")
def built_distributions(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("packaging")
    source = copy_of_the_project(work / "source")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", work / "dist", source], cwd=work)
    return {"wheel": next((work / "dist").glob("*.whl")), "sdist": next((work / "dist").glob("*.tar.gz")),
            "source": source}


def test_the_wheel_holds_the_package_the_sample_and_the_modules(built_distributions):
    import zipfile

    names = set(zipfile.ZipFile(built_distributions["wheel"]).namelist())
    for expected in ("svit_internvl.py", "upload.py", "svitpipe/py.typed", "svitpipe/builder.py",
                     "svitpipe/sample/svit/data/referring_qa.zip", "svitpipe/sample/sa1b/sa_000000.tar",
                     "svitpipe/sample/internvl-sa1b-caption/internvl_sa1b_caption_77k_multi_image_zh.jsonl"):
        assert expected in names
    assert not [name for name in names if name.startswith("tests/") or "__pycache__" in name]


def test_wheel_installs_and_runs_from_outside_the_repository(built_distributions, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    run([python, "-m", "pip", "install", built_distributions["wheel"]], cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = tmp_path / "venv" / "bin" / "svit-internvl"
    result = run([script, "upload", "--sample", "--local-dir", "X", "--configs", "referring", "sa1b-zh-multi"],
                 cwd=outside)
    assert "verified:" in result.stdout
    assert (outside / "X" / "README.md").is_file() and list((outside / "X" / "data" / "referring").glob("*.parquet"))
    imported_from = run([python, "-c", TRAINING_SNIPPET, "X"], cwd=outside).stdout.strip()
    assert Path(imported_from).is_relative_to(tmp_path / "venv"), imported_from
    assert "subcommands:" in run([script, "--help"], cwd=outside).stdout
    assert "--out" in run([python, "-m", "svitpipe", "export", "--help"], cwd=outside).stdout


def test_editable_install_runs_from_outside_the_repository(built_distributions, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    source = built_distributions["source"]
    run([python, "-m", "pip", "install", "--no-build-isolation", "-e", source], cwd=tmp_path)
    imported_from = run([python, "-c", "import svitpipe.training.fast_decode, svit_internvl, upload, svitpipe; "
                         "print(svitpipe.__file__)"], cwd=tmp_path).stdout.strip()
    assert Path(imported_from).is_relative_to(source), imported_from
    result = run([tmp_path / "venv" / "bin" / "svit-internvl", "upload", "--sample", "--local-dir", "Y",
                  "--configs", "description"], cwd=tmp_path)
    assert "verified:" in result.stdout
