"""The package as a wheel installs it: shipped data and C sources are found without the repository.

The wheel is built from a copy of the distribution's sources (so nothing is written into the
checkout), unpacked into a folder that stands in for site-packages, and probed by a fresh
interpreter whose working directory is outside the repository. `.ci/run` does the full thing
(a venv, `pip install dist/*.whl`, the demo's first commands).
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
import tomllib

# the folders of the distribution: every package-dir of pyproject (one source of truth)
FOLDERS = tuple(sorted({d.split("/")[0] for d in tomllib.loads((ROOT / "pyproject.toml").read_text())
                        ["tool"]["setuptools"]["package-dir"].values()}))
SOURCES = (*FOLDERS, "pyproject.toml", "README.md")

PROBE = r"""
import sys
from pathlib import Path
import nvnmd
site = Path(sys.argv[1]).resolve()
assert Path(nvnmd.__file__).resolve().is_relative_to(site), nvnmd.__file__
from nvnmd.quantize.data import default_frames_path
from nvnmd.student import default_student_path
from nvnmd.md.workflow import default_structure_path
from nvnmd.host.cli import FRAMES
from nvnmd.resources import shipped
paths = [default_frames_path() / "lgps50" / "type.raw", default_frames_path() / "lgps400" / "set.000" / "coord.npy",
         default_student_path(), default_structure_path(), FRAMES / "type_map.raw", shipped("lgps_student.pairs.json")]
from nvnmd.resources import package_file
paths += [package_file(pkg, f"csrc/{name}") for pkg, name in (
    ("nvnmd.sim.nvq1", "nvq1_kernel.c"), ("nvnmd.sim.nvq1", "nvq1_kernel.h"), ("nvnmd", "neighbors.c"),
    ("nvnmd", "neighbors.h"), ("nvnmd.host", "crc32c.c"), ("nvnmd.host", "crc32c.h"))]
for p in paths:
    assert Path(p).resolve().is_relative_to(site) and Path(p).is_file(), p
from nvnmd.host import protocol
assert protocol._CRC_LIB.get() is not None and protocol.crc32c(b"123456789") == 0xE3069283
print("ok", len(paths))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """site-packages-like folder holding the unpacked wheel."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        else:
            shutil.copy2(p, src / name)
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(src)], check=True, cwd=work, capture_output=True)
    (wheel,) = dist.glob("nvnmd-*.whl")
    site = work / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_wheel_finds_shipped_data_outside_the_repository(installed, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed), NVNMD_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", PROBE, str(installed)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok 12")


def test_no_module_builds_paths_from_its_own_file():
    """Shipped files are reached through nvnmd.resources only (DESIGN: never relative to a source file)."""
    offenders = []
    for folder in FOLDERS:
        for py in (ROOT / folder).rglob("*.py"):
            if "__file__" in py.read_text(encoding="utf-8"):
                offenders.append(str(py.relative_to(ROOT)))
    assert offenders == []
