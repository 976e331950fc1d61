"""The wheel holds every built-in plugin, its data, and the entry points that register them."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy: setuptools writes ftrun.egg-info and build/ into the tree it builds,
    # and an egg-info left in the checkout would shadow the installed entry points.
    source = tmp_path_factory.mktemp("source") / "ftrun"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "dist", "__pycache__", "ftrun-runs"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("ftrun-*.whl")
    return path


def source_files(folder: str, package: str) -> set[str]:
    """Files under a source folder as they must appear in the wheel (ftrun/..., ftrun/plugins/...)."""
    root = ROOT / folder
    return {f"{package}/{path.relative_to(root).as_posix()}" for path in root.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


def test_wheel_contains_every_plugin_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in source_files("plugins", "ftrun/plugins") | source_files("core", "ftrun"):
        assert expected in names, f"{expected} is missing from the wheel (pyproject.toml packages / package-data)"


def test_wheel_declares_the_builtin_entry_points(wheel):
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = archive.read(entry_points).decode()
    assert "[console_scripts]\nftrun = ftrun.cli:main" in text
    assert "text-classification = ftrun.plugins.text_classification" in text
    assert "[pytest11]\nftrun.testing = ftrun.testing" in text  # the fixtures of ftrun.testing, for plugin authors


def test_plugins_import_from_the_unpacked_wheel(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import ftrun, ftrun.plugins.text_classification as tc;"
        "assert ftrun.__file__.startswith(sys.argv[1]), ftrun.__file__;"
        "assert (tc.task.DEMO_DIR / 'imdb-train.jsonl.gz').is_file()"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
