"""Dependency arrows point one way: every import (module level or inside a function) of every
module in the source tree is checked against the layer it belongs to.

    core (errors, formats, image, compute, neighbors, backend interface, student, ...)
      <- sim <- quantize                       the quantizer calibrates with the simulator
      <- sim <- host                           the virtual board serves the simulator
      <- sim, host <- backends                 implementations of nvnmd.backend.Backend
      <- analysis <- md                        the MD engine sees only the Backend interface
    structures (crystal builders) see only the core
    commands (cli.py, bench, calculator, neb) wire the layers together and may import any of them.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"nvnmd": "nvnmd", "quantize": "nvnmd.quantize", "sim": "nvnmd.sim", "host": "nvnmd.host",
            "fpga": "nvnmd.fpga", "lammps_nvq1": "nvnmd.lammps"}

CORE = ("nvnmd", "nvnmd.errors", "nvnmd.formats", "nvnmd.image", "nvnmd.outputs", "nvnmd.resources", "nvnmd.compute", "nvnmd.neighbors",
        "nvnmd.cbuild", "nvnmd.quiet", "nvnmd.backend", "nvnmd.student", "nvnmd.data")
ALLOWED = {  # layer -> what it may import besides itself and the core
    "core": (),
    "nvnmd.sim": (),
    "nvnmd.quantize": ("nvnmd.sim",),
    "nvnmd.host": ("nvnmd.sim",),
    "nvnmd.backends": ("nvnmd.sim", "nvnmd.host"),
    "nvnmd.analysis": (),
    "nvnmd.md": ("nvnmd.analysis",),
    "nvnmd.structures": (),
    "nvnmd.fpga": ("nvnmd.sim", "nvnmd.host", "nvnmd.quantize"),  # the RTL: memories from quantize, checked against sim
    "nvnmd.lammps": ("nvnmd.sim", "nvnmd.host", "nvnmd.backends", "nvnmd.md", "nvnmd.analysis"),  # the kernel in LAMMPS
    "nvnmd.distill": ("nvnmd.sim", "nvnmd.quantize", "nvnmd.backends", "nvnmd.md", "nvnmd.analysis",
                      "nvnmd.structures"),              # the pipeline drives every layer below it
}


def _modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([package, *parts]), path


def _imports(path):
    deps = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            deps.add(node.module)
            deps |= {f"{node.module}.{a.name}" for a in node.names}  # `from nvnmd import sim`
    return {d for d in deps if d == "nvnmd" or d.startswith("nvnmd.")}


def _within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def _is_command(module):
    last = module.rsplit(".", 1)[-1]
    return last in ("cli", "commands", "calculator", "neb", "bench") or _within(module, "nvnmd.bench")


def _layer(module):
    for layer in ALLOWED:
        if layer != "core" and _within(module, layer):
            return layer
    return "core"


def _is_core(name):
    # `from nvnmd.image import Image` also yields "nvnmd.image.Image"; core modules and their names
    return any(name == c or (c != "nvnmd" and _within(name, c)) for c in CORE)


MODULES = dict(_modules())


def test_the_scan_sees_the_tree():
    assert {"nvnmd.sim.nvq1.fast", "nvnmd.quantize.build", "nvnmd.host.server", "nvnmd.md.engine",
            "nvnmd.backends.guard"} <= set(MODULES)
    assert "nvnmd.compute" in _imports(MODULES["nvnmd.quantize.build"])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not _is_command(m)))
def test_imports_follow_the_arrows(module):
    layer = _layer(module)
    allowed = (layer,) * (layer != "core") + ALLOWED[layer]
    bad = sorted(d for d in _imports(MODULES[module])
                 if not _is_core(d) and not any(_within(d, a) for a in allowed))
    assert not bad, f"{module} ({layer}) imports {', '.join(bad)}"
