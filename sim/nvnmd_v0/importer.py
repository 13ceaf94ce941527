"""`nvnmd quantize --from-nvnmd DIR`: import a deepmd-kit `dp train-nvnmd` (version 0) result.

DIR is the directory `dp train-nvnmd` ran in: nvnmd_qnn/config.npy and nvnmd_qnn/weight.npy
give the quantized model (QNN), nvnmd_cnn/map.npy the mapping tables the QNN graph and the
board image both use. These files are pickled numpy dicts: unpickling runs whatever code a
file names, so they are only read with an explicit trust flag (`trust_pickle=True`,
`--trust-pickle` on the command line). The result is an image of profile "nvnmd-v0"
(nvnmd.sim.nvnmd_v0.model, fpga/SPEC.md "Profile nvnmd-v0"). If nvnmd_qnn/model.pb (deepmd-kit's
wrapped board image) is present, it is checked field by field against the imported model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nvnmd.errors import CorruptFileError, NvnmdError, UnsupportedModelError
from nvnmd.image import Image
from nvnmd.sim.nvnmd_v0.model import MAX_NNEI, NvnmdV0Model
from nvnmd.sim.nvnmd_v0.ops import flt

FILES = {"config": "nvnmd_qnn/config.npy", "weight": "nvnmd_qnn/weight.npy", "map": "nvnmd_cnn/map.npy"}
WRAPPED = "nvnmd_qnn/model.pb"  # deepmd-kit's board image, checked against the import when present


def load_pickled_dict(path: Path, trust_pickle: bool) -> dict:
    """One of deepmd-kit's pickled .npy dicts, only when the caller trusts it."""
    if not trust_pickle:
        raise NvnmdError(f"{path} is a pickled numpy file (loading it can run arbitrary code); "
                         "pass --trust-pickle (trust_pickle=True) only if you trust where it came from")
    if not path.is_file():
        raise NvnmdError(f"{path}: not found (expected a `dp train-nvnmd` output with nvnmd_cnn/ and nvnmd_qnn/)")
    try:
        data = np.load(path, allow_pickle=True)
        data = data.item() if isinstance(data, np.ndarray) and data.dtype == object else data
    except Exception as exc:  # numpy raises many kinds for a damaged file
        raise CorruptFileError(f"{path}: not a readable numpy dict ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: expected a pickled dict, found {type(data).__name__}")
    return data


def load_nvnmd_dir(directory, trust_pickle: bool = False) -> dict:
    """{"config", "weight", "map"} dicts of a `dp train-nvnmd` directory."""
    root = Path(directory)
    if not root.is_dir():
        raise NvnmdError(f"{root}: not a directory")
    return {key: load_pickled_dict(root / rel, trust_pickle) for key, rel in FILES.items()}


def model_from_dicts(config: dict, weight: dict, maps: dict, source: str = "") -> NvnmdV0Model:
    try:
        ctrl, dscp, dpin = config["ctrl"], config["dscp"], config["dpin"]
        version = int(ctrl["VERSION"])
        if version != 0:
            raise UnsupportedModelError(f"{source}: NVNMD version {version}; only version 0 (se_a) is supported")
        if int(ctrl["MAX_NNEI"]) not in MAX_NNEI:
            raise UnsupportedModelError(f"{source}: max_nnei {ctrl['MAX_NNEI']} is not one of {MAX_NNEI}")
        ntype = int(dscp["ntype"])
        type_map = list(dpin.get("type_map") or [str(t) for t in range(ntype)])[:ntype]
        w, b = [], []
        for layer in range(4):
            name = "final_layer_type_{t}" if layer == 3 else f"layer_{layer}_type_{{t}}"
            w.append(np.stack([np.asarray(weight[name.format(t=t) + ".matrix"], np.float64) for t in range(ntype)]))
            b.append(np.stack([np.asarray(weight[name.format(t=t) + ".bias"], np.float64) for t in range(ntype)]))
        bias_key = "fitting_attr.t_bias_atom_e" if "fitting_attr.t_bias_atom_e" in weight else "t_bias_atom_e"
        e_shift = np.asarray(weight[bias_key], np.float64).reshape(-1)[:ntype]
        s_h = np.stack([np.concatenate([maps["s"][t], maps["h"][t]], axis=1) for t in range(ntype)])
        s_h_grad = np.stack([np.concatenate([maps["s_grad"][t], maps["h_grad"][t]], axis=1) for t in range(ntype)])
        g = np.stack([np.asarray(maps["g"][t], np.float64) for t in range(ntype)])
        g_grad = np.stack([np.asarray(maps["g_grad"][t], np.float64) for t in range(ntype)])
        model = NvnmdV0Model(
            type_map=type_map, rcut=float(dscp["rcut"]), sel=[int(s) for s in dscp["sel"]][:ntype],
            nix=int(dscp["NIX"]), m1=int(dscp["M1"]), m2=int(dscp["M2"]), max_nnei=int(ctrl["MAX_NNEI"]),
            cfg_u2s=[list(r) for r in maps["cfg_u2s"]], cfg_s2g=[list(r) for r in maps["cfg_s2g"]],
            s_h=flt(s_h.astype(np.float64)), s_h_grad=flt(s_h_grad.astype(np.float64)), g=flt(g), g_grad=flt(g_grad),
            w=w, b=b, e_shift=e_shift,
            meta_extra={"source": {"format": "deepmd-kit dp train-nvnmd", "version": version, "path": source,
                                   "rcut_smth": float(dscp.get("rcut_smth", 0.0)),
                                   "smin": float(dscp.get("smin", 0.0)), "smax": float(dscp.get("smax", 0.0))}})
    except KeyError as exc:
        raise CorruptFileError(f"{source}: NVNMD model files lack {exc}") from None
    model.validate()
    return model


def import_nvnmd(directory, trust_pickle: bool = False, check_wrap: bool = True) -> Image:
    """A `dp train-nvnmd` directory -> an "nvnmd-v0" image. When the directory holds deepmd-kit's
    wrapped board image (nvnmd_qnn/model.pb) it must encode exactly the imported model."""
    d = load_nvnmd_dir(directory, trust_pickle)
    model = model_from_dicts(d["config"], d["weight"], d["map"], source=str(directory))
    wrapped = Path(directory) / WRAPPED
    if check_wrap and wrapped.is_file():
        from nvnmd.sim.nvnmd_v0.wrap import verify_wrapped

        verify_wrapped(wrapped, model)
        model.meta_extra["source"]["wrapped_image"] = "nvnmd_qnn/model.pb agrees field by field"
    return model.to_image()
