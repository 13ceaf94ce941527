"""Float DeePMD se_e2_a students: loading through deepmd-kit's serialization, one in-memory form.

`load_student(path)` reads a frozen TensorFlow `.pb`, a deepmd-kit native `.dp`/`.yaml`, or a
PyTorch `.pth` (when PyTorch is installed), always through deepmd-kit's own `serialize()`,
and returns a `Student`: type map, cutoffs, sel, per-centre-type normalisation, embedding and
fitting networks (numpy) and the per-type energy bias. Anything that is not a plain se_e2_a
energy model is refused with an `UnsupportedModelError` naming what is supported.

A sidecar `<model>.pairs.json` beside the model file (written by student/closest_pairs.py)
carries the closest distance per element pair in the training data, which the short-range
guard (nvnmd/backends/guard.py) switches on below; it becomes `Student.closest_pairs`.

`Student.serialize()/deserialize()` give a versioned, pickle-free dict (plain lists and numpy
arrays) in the manner of deepmd-kit's `dpmodel`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nvnmd.errors import CorruptFileError, UnsupportedModelError
from nvnmd.quiet import quiet_native

SUPPORTED = "deepmd-kit se_e2_a (se_a) energy models without type embedding, fparam/aparam, exclusions or spin"
STUDENT_VERSION = 1


@dataclass
class Layer:
    """y = act(x @ w + b) * idt (+ x, or + [x, x], when `resnet` and the widths allow)."""

    w: np.ndarray
    b: np.ndarray
    idt: np.ndarray | None
    resnet: bool
    activation: str  # "tanh" or "linear"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = _activate(x @ self.w + self.b, self.activation)
        if self.idt is not None:
            y = y * self.idt
        return y + self.shortcut(x)

    def shortcut(self, x: np.ndarray) -> np.ndarray | float:
        nin, nout = self.w.shape
        if not self.resnet:
            return 0.0
        if nout == nin:
            return x
        if nout == 2 * nin:
            return np.concatenate([x, x], axis=-1)
        return 0.0

    def serialize(self) -> dict:
        return {
            "w": self.w,
            "b": self.b,
            "idt": self.idt,
            "resnet": self.resnet,
            "activation": self.activation,
        }

    @classmethod
    def deserialize(cls, data: dict) -> "Layer":
        idt = data.get("idt")
        return cls(
            w=np.asarray(data["w"], dtype=np.float64),
            b=np.asarray(data["b"], dtype=np.float64),
            idt=None if idt is None else np.asarray(idt, dtype=np.float64),
            resnet=bool(data["resnet"]),
            activation=str(data["activation"]),
        )


@dataclass
class Network:
    layers: list[Layer]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def serialize(self) -> dict:
        return {"layers": [layer.serialize() for layer in self.layers]}

    @classmethod
    def deserialize(cls, data: dict) -> "Network":
        return cls([Layer.deserialize(layer) for layer in data["layers"]])


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "tanh":
        return np.tanh(x)
    if name in ("linear", "none"):
        return x
    raise UnsupportedModelError(f"activation '{name}' is not supported (tanh only); supported: {SUPPORTED}")


@dataclass
class Student:
    """A float se_e2_a energy model, backend-free.

    Shapes: `davg`/`dstd` are [ntypes, 4] (radial column, then x, y, z) per centre type;
    `embedding[ti][tj]` is the net for centre type ti and neighbour type tj (the same object
    for every ti when `type_one_side`); `fitting[ti]` maps the descriptor (M1*M2) to e_i;
    atomic energy = (fitting(D) + bias_atom_e[ti]) * out_std[ti] + out_bias[ti].
    """

    type_map: list[str]
    rcut: float
    rcut_smth: float
    sel: list[int]
    neuron: list[int]
    axis_neuron: int
    type_one_side: bool
    davg: np.ndarray
    dstd: np.ndarray
    embedding: list[list[Network]]
    fitting: list[Network]
    bias_atom_e: np.ndarray
    out_bias: np.ndarray
    out_std: np.ndarray
    min_nbor_dist: float | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)
    closest_pairs: dict[str, float] | None = None  # "Li-S" -> Å, from the training data

    @property
    def ntypes(self) -> int:
        return len(self.type_map)

    @property
    def m1(self) -> int:
        return self.neuron[-1]

    @property
    def nnei(self) -> int:
        return int(sum(self.sel))

    @property
    def fitting_neuron(self) -> list[int]:
        return [layer.w.shape[1] for layer in self.fitting[0].layers[:-1]]

    def describe(self) -> str:
        lines = [
            f"model        se_e2_a energy model ({self.source or 'in memory'})",
            f"type_map     {' '.join(self.type_map)}",
            f"rcut         {self.rcut:g} A (smooth from {self.rcut_smth:g} A)",
            f"sel          {self.sel} (total {self.nnei})",
            f"embedding    {self.neuron}, {'shared per neighbour type (type_one_side)' if self.type_one_side else 'per type pair'}, axis_neuron {self.axis_neuron}",
            f"descriptor   {self.m1 * self.axis_neuron} numbers per atom",
            f"fitting      {self.fitting_neuron} -> 1, activation {self.fitting[0].layers[0].activation}",
            "davg/dstd    " + ", ".join(
                f"{t}: s {self.davg[i, 0]:.4g}/{self.dstd[i, 0]:.4g}, xyz {self.dstd[i, 1]:.4g}"
                for i, t in enumerate(self.type_map)
            ),
            "energy bias  " + ", ".join(
                f"{t} {self.bias_atom_e[i] * self.out_std[i] + self.out_bias[i]:.6f} eV"
                for i, t in enumerate(self.type_map)
            ),
        ]
        if self.min_nbor_dist is not None:
            lines.append(f"min dist     {self.min_nbor_dist:.4f} A (training data)")
        if self.closest_pairs:
            lines.append("closest      " + ", ".join(f"{k} {v:.2f}" for k, v in self.closest_pairs.items())
                         + " A (training data; the short-range guard acts below)")
        return "\n".join(lines)

    def serialize(self) -> dict:
        return {
            "@class": "nvnmd.Student",
            "@version": STUDENT_VERSION,
            "type_map": list(self.type_map),
            "rcut": self.rcut,
            "rcut_smth": self.rcut_smth,
            "sel": list(self.sel),
            "neuron": list(self.neuron),
            "axis_neuron": self.axis_neuron,
            "type_one_side": self.type_one_side,
            "davg": self.davg,
            "dstd": self.dstd,
            "embedding": [[net.serialize() for net in row] for row in self.embedding],
            "fitting": [net.serialize() for net in self.fitting],
            "bias_atom_e": self.bias_atom_e,
            "out_bias": self.out_bias,
            "out_std": self.out_std,
            "min_nbor_dist": self.min_nbor_dist,
            "source": self.source,
            "closest_pairs": self.closest_pairs,
        }

    @classmethod
    def deserialize(cls, data: dict) -> "Student":
        if data.get("@class") != "nvnmd.Student" or data.get("@version") != STUDENT_VERSION:
            raise CorruptFileError(
                f"not an nvnmd student description of version {STUDENT_VERSION} "
                f"(got {data.get('@class')!r} version {data.get('@version')!r})"
            )
        return cls(
            type_map=list(data["type_map"]),
            rcut=float(data["rcut"]),
            rcut_smth=float(data["rcut_smth"]),
            sel=[int(s) for s in data["sel"]],
            neuron=[int(n) for n in data["neuron"]],
            axis_neuron=int(data["axis_neuron"]),
            type_one_side=bool(data["type_one_side"]),
            davg=np.asarray(data["davg"], dtype=np.float64),
            dstd=np.asarray(data["dstd"], dtype=np.float64),
            embedding=[[Network.deserialize(n) for n in row] for row in data["embedding"]],
            fitting=[Network.deserialize(n) for n in data["fitting"]],
            bias_atom_e=np.asarray(data["bias_atom_e"], dtype=np.float64),
            out_bias=np.asarray(data["out_bias"], dtype=np.float64),
            out_std=np.asarray(data["out_std"], dtype=np.float64),
            min_nbor_dist=None if data.get("min_nbor_dist") is None else float(data["min_nbor_dist"]),
            source=str(data.get("source", "")),
            closest_pairs=data.get("closest_pairs"),
        )


# ---------------------------------------------------------------------------------------
# Reading deepmd-kit files


def default_student_path() -> Path:
    """The embedded default LGPS student shipped with the package."""
    from nvnmd.resources import shipped

    return shipped("lgps_student.pb")


def model_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a model file: what images made from it and runs of it record as its identity."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_student(path: str | os.PathLike) -> Student:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    data = serialize_model_file(path)
    student = student_from_deepmd(data, source=str(path))
    if path.suffix.lower() == ".pb":
        _apply_tf_fitting_semantics(student)
    student.closest_pairs = read_closest_pairs(path, student.type_map)
    return student


def pairs_sidecar(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".pairs.json")


def read_closest_pairs(model_path: str | os.PathLike, type_map: list[str]) -> dict[str, float] | None:
    """The sidecar's {"A-B": Å} for every element pair of `type_map`, or None without a sidecar."""
    import json

    path = pairs_sidecar(model_path)
    if not path.exists():
        return None
    try:
        pairs = {str(k): float(v) for k, v in json.loads(path.read_text())["pairs"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptFileError(f"{path}: not a closest-pairs file ({exc})") from None
    missing = [f"{a}-{b}" for i, a in enumerate(type_map) for b in type_map[i:]
               if f"{a}-{b}" not in pairs and f"{b}-{a}" not in pairs]
    if missing:
        raise CorruptFileError(f"{path}: needs a distance for every element pair (missing {', '.join(missing)})")
    if not all(0.0 < v < 100.0 for v in pairs.values()):
        raise CorruptFileError(f"{path}: distances must lie between 0 and 100 Å")
    return pairs


def _apply_tf_fitting_semantics(student: Student) -> None:
    """TF energy fits never apply a timestep or residual to fitting layer 0 (deepmd/tf/fit/ener.py
    builds them only for layers ii >= 1), but deepmd-kit's serialization of a TF model reports
    layer 0 with resnet and an untrained idt whenever the descriptor width equals the first
    layer's. Drop both so the Student evaluates what DeepPot evaluates (atom energies then agree
    to 1e-14 eV; with them they are off by eV)."""
    for net in student.fitting:
        net.layers[0].idt = None
        net.layers[0].resnet = False


def serialize_model_file(path: Path) -> dict:
    """deepmd-kit's serialized dict of a model file, or a clear error."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in (".pb", ".dp", ".yaml", ".yml", ".pth"):
        raise UnsupportedModelError(
            f"{path}: unsupported model file type '{suffix or path.name}'; expected a frozen "
            f"TensorFlow .pb, a deepmd-kit .dp/.yaml or a PyTorch .pth holding {SUPPORTED}"
        )
    head = path.read_bytes()[:8]
    if len(head) == 0:
        raise CorruptFileError(f"{path}: file is empty")
    try:
        if suffix == ".pb":
            return _quiet(_serialize_tf, path)
        if suffix in (".dp", ".yaml", ".yml"):
            if suffix == ".dp" and not head.startswith(b"\x89HDF"):
                raise CorruptFileError(f"{path}: not an HDF5 file, so not a deepmd-kit .dp model")
            from deepmd.dpmodel.utils.serialization import load_dp_model

            return _quiet(load_dp_model, str(path))
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UnsupportedModelError(
                f"{path}: reading .pth needs PyTorch, which is not installed; convert it with "
                f"`dp convert-backend {path.name} {path.stem}.dp` on a machine with PyTorch"
            ) from None
        try:
            from deepmd.pt.utils.serialization import serialize_from_file
        except Exception as exc:  # e.g. deepmd-kit's PyTorch ops built for another torch release
            raise UnsupportedModelError(
                f"{path}: reading .pth needs deepmd-kit's PyTorch backend, which does not load here "
                f"({_first_line(exc)}); convert it with `dp convert-backend {path.name} {path.stem}.dp` "
                f"where it does (pip install 'deepmd-kit[torch]')"
            ) from None
        return _quiet(serialize_from_file, str(path))
    except (UnsupportedModelError, CorruptFileError):
        raise
    except Exception as exc:  # deepmd-kit/TF raise many types for unreadable files
        raise CorruptFileError(f"{path}: deepmd-kit cannot read this model ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _serialize_tf(path: Path) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from deepmd.tf.utils.serialization import serialize_from_file

    return serialize_from_file(str(path))


def _quiet(fn, *args):
    with quiet_native():
        return fn(*args)


def _refuse(what: str) -> None:
    raise UnsupportedModelError(f"{what}; supported: {SUPPORTED}")


def student_from_deepmd(data: dict, source: str = "") -> Student:
    """Validate deepmd-kit's serialized model dict and convert it into a `Student`."""
    model = data.get("model", data)
    if not isinstance(model, dict) or "descriptor" not in model:
        _refuse(f"{source}: not a deepmd-kit energy model")
    mtype = model.get("type", "standard")
    if mtype != "standard":
        _refuse(f"{source}: model type '{mtype}' is not supported")
    if model.get("atom_exclude_types") or model.get("pair_exclude_types"):
        _refuse(f"{source}: atom/pair exclusions are not supported")
    desc = model["descriptor"]
    dtype = desc.get("type")
    if dtype not in ("se_e2_a", "se_a"):
        _refuse(f"{source}: descriptor '{dtype}' is not supported")
    if desc.get("exclude_types"):
        _refuse(f"{source}: descriptor exclude_types are not supported")
    if desc.get("spin") or model.get("spin"):
        _refuse(f"{source}: spin models are not supported")
    env = desc.get("env_mat", {})
    if env.get("use_exp_switch"):
        _refuse(f"{source}: the exponential switch is not supported")
    if float(env.get("protection", 0.0)) != 0.0 or float(desc.get("env_protection", 0.0)) != 0.0:
        _refuse(f"{source}: env_protection is not supported")
    if desc.get("activation_function", "tanh") != "tanh":
        _refuse(f"{source}: embedding activation '{desc.get('activation_function')}' is not supported (tanh only)")
    fit = model["fitting"]
    if fit.get("type") != "ener":
        _refuse(f"{source}: fitting '{fit.get('type')}' is not supported (energy only)")
    if fit.get("numb_fparam", 0) or fit.get("numb_aparam", 0) or fit.get("dim_case_embd", 0):
        _refuse(f"{source}: fparam/aparam/case embeddings are not supported")
    if fit.get("atom_ener") or fit.get("exclude_types") or fit.get("mixed_types"):
        _refuse(f"{source}: atom_ener, fitting exclusions and mixed types are not supported")
    if fit.get("activation_function", "tanh") != "tanh":
        _refuse(f"{source}: fitting activation '{fit.get('activation_function')}' is not supported (tanh only)")

    type_map = list(model["type_map"])
    ntypes = len(type_map)
    sel = [int(s) for s in desc["sel"]]
    if len(sel) != ntypes:
        _refuse(f"{source}: sel has {len(sel)} entries for {ntypes} types")
    nnei = sum(sel)
    davg = np.asarray(desc["@variables"]["davg"], dtype=np.float64).reshape(ntypes, nnei, 4)
    dstd = np.asarray(desc["@variables"]["dstd"], dtype=np.float64).reshape(ntypes, nnei, 4)
    if not (np.all(davg == davg[:, :1, :]) and np.all(dstd == dstd[:, :1, :])):
        _refuse(f"{source}: davg/dstd differ between neighbour slots")
    davg, dstd = davg[:, 0, :], dstd[:, 0, :]
    if np.any(davg[:, 1:] != 0.0) or np.any(dstd[:, 1:] != dstd[:, 1:2]):
        _refuse(f"{source}: non-zero davg or unequal dstd on the x/y/z columns")

    type_one_side = bool(desc.get("type_one_side", True))
    nets = desc["embeddings"]["networks"]
    if type_one_side:
        if len(nets) != ntypes:
            _refuse(f"{source}: expected {ntypes} embedding nets, found {len(nets)}")
        per_type = [_network(n, source) for n in nets]
        embedding = [list(per_type) for _ in range(ntypes)]
    else:
        if len(nets) != ntypes * ntypes:
            _refuse(f"{source}: expected {ntypes * ntypes} embedding nets, found {len(nets)}")
        # deepmd-kit's NetworkCollection flattens the key (centre, neighbour) as centre + neighbour * ntypes
        embedding = [[_network(nets[ti + tj * ntypes], source) for tj in range(ntypes)] for ti in range(ntypes)]

    fnets = fit["nets"]["networks"]
    if len(fnets) != ntypes:
        _refuse(f"{source}: expected one fitting net per type, found {len(fnets)}")
    fitting = [_network(n, source, final_linear=True) for n in fnets]

    bias = np.asarray(fit["@variables"]["bias_atom_e"], dtype=np.float64).reshape(ntypes, -1)[:, 0]
    mvars = model.get("@variables", {}) or {}
    out_bias = np.asarray(mvars.get("out_bias", np.zeros((1, ntypes, 1))), dtype=np.float64).reshape(-1, ntypes)[0]
    out_std = np.asarray(mvars.get("out_std", np.ones((1, ntypes, 1))), dtype=np.float64).reshape(-1, ntypes)[0]
    min_nbor = (data.get("@variables") or {}).get("min_nbor_dist")
    return Student(
        type_map=type_map,
        rcut=float(desc["rcut"]),
        rcut_smth=float(desc["rcut_smth"]),
        sel=sel,
        neuron=[int(n) for n in desc["neuron"]],
        axis_neuron=int(desc["axis_neuron"]),
        type_one_side=type_one_side,
        davg=davg,
        dstd=dstd,
        embedding=embedding,
        fitting=fitting,
        bias_atom_e=bias,
        out_bias=out_bias,
        out_std=out_std,
        min_nbor_dist=None if min_nbor is None else float(np.asarray(min_nbor)),
        source=source,
    )


def _network(net: dict, source: str, final_linear: bool = False) -> Network:
    layers = []
    for k, layer in enumerate(net["layers"]):
        if layer.get("use_timestep") and layer["@variables"].get("idt") is None:
            _refuse(f"{source}: timestep layer without idt")
        act = layer.get("activation_function", "tanh")
        if final_linear and k == len(net["layers"]) - 1:
            act = "linear" if act in (None, "none", "linear") else act
        if act not in ("tanh", "linear", "none", None):
            _refuse(f"{source}: activation '{act}' is not supported")
        var = layer["@variables"]
        layers.append(
            Layer(
                w=np.asarray(var["w"], dtype=np.float64),
                b=np.asarray(var["b"], dtype=np.float64) if var.get("b") is not None else np.zeros(var["w"].shape[1]),
                idt=None if var.get("idt") is None else np.asarray(var["idt"], dtype=np.float64),
                resnet=bool(layer.get("resnet", False)),
                activation="linear" if act in (None, "none") else act,
            )
        )
    return Network(layers)
