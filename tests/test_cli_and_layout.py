"""The ``svit-internvl`` command, and the rules the package's layout keeps: ``svitpipe`` never imports the
top-level modules, nothing edits ``sys.path``, each stage lives in its folder."""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from svitpipe import cli
from svitpipe.publish.upload import redo_command

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "svitpipe"


def test_usage_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert f"  {name}" in out


@pytest.mark.parametrize("argv, code", [([], 2), (["nonsense"], 2)])
def test_no_or_unknown_subcommand_is_a_usage_error(argv, code, capsys):
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert "subcommands:" in captured.out + captured.err
    if argv:
        assert "unknown subcommand 'nonsense'" in captured.err


@pytest.mark.parametrize("name, option", [("upload", "--sa1b-images-source"), ("export", "--config")])
def test_subcommand_help_is_the_subcommands_own(name, option, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main([name, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: svit-internvl {name}" in out and option in out


def test_upload_subcommand_builds_the_sample(tmp_path, capsys):
    assert cli.main(["upload", "--sample", "--local-dir", str(tmp_path / "out"), "--configs", "description"]) == 0
    assert (tmp_path / "out" / "data" / "description").is_dir()


def test_python_dash_m_svitpipe_is_the_command():
    result = subprocess.run([sys.executable, "-m", "svitpipe", "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "subcommands:" in result.stdout


@pytest.mark.parametrize(
    "argv, command, expected_start",
    [
        (["--sample", "--local-dir", "a b"], ["svit-internvl", "upload"], ["svit-internvl", "upload"]),
        (["--sample"], None, [sys.executable, "-m", "svitpipe", "upload"]),
    ],
)
def test_redo_command_repeats_the_arguments(argv, command, expected_start):
    assert shlex.split(redo_command(argv, command)) == [*expected_start, *argv]


# --------------------------------------------------------------------------
# Layout rules
# --------------------------------------------------------------------------


def python_files(root: Path):
    skipped = {".venv", ".git", "build", "dist", ".data", "__pycache__"}
    return [path for path in root.rglob("*.py") if not skipped & set(path.relative_to(root).parts)]


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against the file's package."""
    package = list(path.relative_to(REPO_ROOT).parent.parts)
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            modules.add(module)
            modules.update(f"{module}.{alias.name}" for alias in node.names)  # from . import submodule
    return modules


def test_the_package_never_imports_the_top_level_modules():
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_modules(path) & {"svit_internvl", "upload"})
        for path in python_files(PACKAGE)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_importing_every_module_of_the_package_loads_no_top_level_module():
    modules = sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in python_files(PACKAGE) if path.name != "__main__.py"
    )
    code = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted({'svit_internvl', 'upload'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_nothing_edits_sys_path():
    offenders = []
    for path in python_files(REPO_ROOT):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                target = next((t.value for t in targets if isinstance(t, ast.Subscript)), None)
            if (isinstance(target, ast.Attribute) and target.attr == "path" and isinstance(target.value, ast.Name)
                    and target.value.id == "sys"):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    "folder, modules",
    [
        ("svit", {"source", "json_array_reader", "record_index", "records", "referring_regions", "vg_images",
                  "examples"}),
        ("sa1b", {"source", "paths", "caption_index", "records", "tar_images", "examples", "reference",
                  "tar_member_index", "image_source", "attach"}),
        ("publish", {"units", "unit_sources", "parquet_layout", "allocator", "engines", "folder_lock", "checks", "card", "hub_push", "upload"}),
        ("training", {"chat_format", "boxes", "fast_decode", "export", "llava_export", "view"}),
        ("testing", {"fake_upstream"}),
    ],
)
def test_each_stage_lives_in_its_folder(folder, modules):
    assert {path.stem for path in (PACKAGE / folder).glob("*.py")} - {"__init__"} == modules


def test_runtime_modules_do_not_import_the_test_tooling():
    offenders = [
        str(path.relative_to(REPO_ROOT)) for path in python_files(PACKAGE)
        if "testing" not in path.relative_to(PACKAGE).parts
        and any(name.startswith("svitpipe.testing") for name in imported_modules(path))
    ]
    assert offenders == []


HEAVY_OPTIONAL_MODULES = ("torch", "matplotlib", "transformers", "trl", "ray", "cv2")


def test_a_sample_build_imports_none_of_the_heavy_optional_modules(tmp_path):
    """``upload.py`` keeps to what publishing needs: torch alone would add ~170 MB to every build process (and to
    each local worker); matplotlib, the trainers, Ray (unless asked for) and OpenCV belong to other commands."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['upload.py', '--sample', '--configs', 'referring', 'sa1b-en-multi', '--local-dir', {str(tmp_path)!r}]\n"
        "try:\n    runpy.run_path('upload.py', run_name='__main__')\nexcept SystemExit as end:\n    assert not end.code, end\n"
        f"print(sorted(name for name in {HEAVY_OPTIONAL_MODULES!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
