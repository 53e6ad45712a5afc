"""The package a user installs: a wheel built from the checkout's files (as a fresh clone has
them, plus new files not yet committed), installed with pip into a fresh venv outside the
repository, and run from there.

The venv gets the wheel alone (``--no-deps``); torch, numpy and the other dependencies come from
the test's own environment through a ``.pth`` line, instead of a download of several GB. The
tests check that ``superconverge`` itself is imported from the venv, not from the checkout.
"""

from __future__ import annotations

import email
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import superconverge

REPO = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
pytestmark = pytest.mark.skipif(
    not (REPO / ".git").exists(), reason="builds from a git checkout's files"
)


def _checkout_files(destination: Path) -> Path:
    """The files a clone would have (tracked, plus untracked ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet committed is not there
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = _checkout_files(tmp_path_factory.mktemp("clone"))
    out = tmp_path_factory.mktemp("dist")
    # no build isolation: the build uses this environment's setuptools (checked against the
    # pyproject's requirement below) instead of downloading one
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("superconverge-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (no pip of its own) holding the wheel; dependencies from this environment."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # a .pth path line adds the folder, not the .pth files inside it: an editable install of
    # the checkout there stays out of this venv
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def _run(venv: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_build_requirement_is_met_by_the_setuptools_that_built_it():
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (requirement,) = map(Requirement, pyproject["build-system"]["requires"])
    assert requirement.name == "setuptools"
    assert requirement.specifier.contains(importlib.metadata.version("setuptools"))


def test_the_wheel_ships_types_the_license_and_full_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        license_names = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert license_names and b"MIT License" in archive.read(license_names[0])
    assert "superconverge/py.typed" in names  # PEP 561: users' type checkers read our types
    assert "superconverge/cli/main.py" in names and "superconverge/keras/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    assert metadata["Version"] == superconverge.__version__
    assert metadata["License-Expression"] == "MIT"  # an SPDX expression (PEP 639)
    assert metadata["License-File"] == "LICENSE"
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639 forbids both
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("torch>=2.2") for r in requires)
    assert any(r.startswith("keras>=3.0") and "extra == " in r for r in requires)
    # a package index cannot follow links relative to the repository: the README has none
    description = metadata.get_payload()
    assert "](docs/" not in description and "](#" not in description


def test_the_installed_wheel_runs_from_outside_the_repository(venv, tmp_path):
    where = _run(
        venv, "python", "-c", "import superconverge; print(superconverge.__file__)", cwd=tmp_path
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the wheel's copy, not the checkout's
    version = _run(venv, "superconverge", "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines()[0] == f"superconverge {superconverge.__version__}"
    assert "torch " in version.stdout and "device " in version.stdout
    help_text = _run(venv, "superconverge", "tune", "--help", cwd=tmp_path)
    assert help_text.returncode == 0, help_text.stderr
    assert "(default: 10)" in help_text.stdout


@pytest.mark.slow
def test_superconverge_tune_runs_from_the_installed_wheel(venv, tmp_path):
    run = _run(
        venv, "superconverge", "tune", "--epochs", "1", "--out", str(tmp_path / "run"), cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "report.html").is_file() and "verdict:" in run.stdout


@pytest.mark.parametrize(
    ("package", "module", "extra"),
    [("lightning", "lightning", "lightning"), ("transformers", "huggingface", "huggingface")],
)
def test_an_integration_without_its_extra_names_the_extra(package, module, extra):
    # was a bare "ModuleNotFoundError: No module named 'lightning'", where TensorBoardLogger,
    # MLflowLogger and superconverge.keras each name their extra
    absent = f"import sys; sys.modules[{package!r}] = None; import superconverge.{module}"
    run = subprocess.run([sys.executable, "-c", absent], capture_output=True, text=True)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: superconverge.") and f"'superconverge[{extra}]'" in last
