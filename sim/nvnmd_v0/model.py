"""Profile "nvnmd-v0": the decoded form of an image holding a deepmd-kit NVNMD-v0 (se_a) model.

Owns `NvnmdV0Model` (image <-> arrays, validated on load) and the profile's fixed limits.
What the image holds (fpga/SPEC.md, "Profile nvnmd-v0"): the CNN mapping tables truncated
to the flt format (only their flt value reaches deepmd-kit's arithmetic), the fitting-net
weights and biases as deepmd-kit's float64 values (the QNN graph quantizes them in-graph:
rounded onto 2^-23, then a floor-quantized significand per column or row; keeping the
source values lets the wrapped-board-image reader re-encode them exactly), the per-type
energy shift as float64, and the descriptor constants in the header. The weight encodings
the kernel uses are derived on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nvnmd.errors import CorruptFileError, UnsupportedModelError
from nvnmd.image import Image
from nvnmd.sim.nvnmd_v0.ops import fitnet_weight, flt, q_round

PROFILE = "nvnmd-v0"
SPEC_VERSION = 1
MAX_TYPES = 4  # NVNMD-v0 handles up to 4 species
MAX_NNEI = (128, 256)  # the two v0 board variants (sum of sel must not exceed it)
MAX_NEIGHBORS = 256  # widest candidate row accepted from the host (Verlet lists with a skin)
FIX_FRAC = 23  # fitting data / weights grid 2^-23 (NBIT_FIT_DATA_FL, NBIT_FIXD_FL)
W_FRAC = 19  # matmul_fitnet weight significand fraction bits (NBIT_FIT_SHORT_FL)
GRAD_WX_FRAC = 21  # backward precision of the pre-activation quantize
N_LAYERS = 4  # three hidden (residual on layers 1, 2) + the final layer


@dataclass
class NvnmdV0Model:
    type_map: list[str]
    rcut: float
    sel: list[int]
    nix: int  # descriptor normalisation 1/NIX (a power of two)
    m1: int
    m2: int
    max_nnei: int
    cfg_u2s: list[list[float]]  # map intervals (x0, x1, dx, N0, N1) for u -> (s, h)
    cfg_s2g: list[list[float]]  # map intervals for s -> G
    s_h: np.ndarray  # [ntypes, rows, 8]   flt: s | h coefficients, by centre type
    s_h_grad: np.ndarray  # [ntypes, rows, 8]   flt: their derivative tables
    g: np.ndarray  # [ntypes, rows, 4*M1] flt: G(s), by neighbour type
    g_grad: np.ndarray  # [ntypes, rows, 4*M1]
    w: list[np.ndarray]  # per layer float64 [ntypes, nin, nout], deepmd-kit's weights
    b: list[np.ndarray]  # per layer float64 [ntypes, nout]
    e_shift: np.ndarray  # float64 [ntypes], deepmd-kit's t_bias_atom_e
    meta_extra: dict = field(default_factory=dict)

    @property
    def ntypes(self) -> int:
        return len(self.type_map)

    def validate(self) -> None:
        nt = self.ntypes
        if not 1 <= nt <= MAX_TYPES:
            raise UnsupportedModelError(f"nvnmd-v0 handles 1..{MAX_TYPES} atom types, this model has {nt}")
        if len(self.sel) != nt or min(self.sel) < 0 or sum(self.sel) > self.max_nnei:
            raise UnsupportedModelError(f"sel {self.sel} does not fit {nt} types within max_nnei {self.max_nnei}")
        if self.nix <= 0 or self.nix & (self.nix - 1):
            raise CorruptFileError(f"NIX {self.nix} is not a power of two")
        if self.m1 * self.m2 != self.w[0].shape[1] or 4 * self.m1 != self.g.shape[2]:
            raise CorruptFileError("descriptor width does not match the fitting net / G tables")
        shapes = [a.shape[0] for a in (self.s_h, self.s_h_grad, self.g, self.g_grad, self.e_shift)]
        if any(s != nt for s in shapes) or len(self.w) != N_LAYERS or len(self.b) != N_LAYERS:
            raise CorruptFileError("nvnmd-v0 image sections do not match its type count / layer count")
        for rows in (self.cfg_u2s, self.cfg_s2g):
            for x0, x1, dx, n0, n1 in rows:
                if not (x0 <= x1 and dx > 0 and 0 <= n0 < n1 <= self.g.shape[1]):
                    raise CorruptFileError(f"invalid map interval {(x0, x1, dx, n0, n1)}")

    # ---- derived encodings used by the kernel ----
    def layer_params(self, t: int, layer: int):
        """(forward weight encoding, backward weight encoding, bias) of one layer for centre type t.
        Hidden layers use one block exponent per column (forward) / row (backward), the final
        layer one for the whole matrix, as deepmd-kit's matmul_fitnet normw flag selects."""
        w = q_round(self.w[layer][t], FIX_FRAC)
        per = layer < N_LAYERS - 1
        return (fitnet_weight(w, per, W_FRAC), fitnet_weight(w.T, per, W_FRAC), q_round(self.b[layer][t], FIX_FRAC))

    # ---- image ----
    def to_image(self) -> Image:
        self.validate()
        sections = {"s_h": self.s_h, "s_h_grad": self.s_h_grad, "g": self.g, "g_grad": self.g_grad,
                    "e_shift": np.asarray(self.e_shift, np.float64)}
        for layer in range(N_LAYERS):
            sections[f"w{layer}"] = np.asarray(self.w[layer], np.float64)
            sections[f"b{layer}"] = np.asarray(self.b[layer], np.float64)
        meta = {"spec_version": SPEC_VERSION, "type_map": list(self.type_map), "rcut": float(self.rcut),
                "sel": [int(s) for s in self.sel], "nix": int(self.nix), "m1": int(self.m1), "m2": int(self.m2),
                "max_nnei": int(self.max_nnei), "cfg_u2s": _intervals(self.cfg_u2s),
                "cfg_s2g": _intervals(self.cfg_s2g),
                "formats": {"tables": "float64 truncated to flt (sign, 11-bit exponent, 20 fraction bits)",
                            "weights": "float64 (quantized in the datapath)", "biases": "float64",
                            "e_shift": "float64", "results": "float64 (ComputeResult encoding 'float64')"}}
        meta.update(self.meta_extra)
        return Image(profile=PROFILE, meta=meta, sections=sections)

    @classmethod
    def from_image(cls, image: Image) -> "NvnmdV0Model":
        if image.profile != PROFILE:
            raise UnsupportedModelError(f"image profile '{image.profile}' is not {PROFILE}")
        m, s = image.meta, image.sections
        if int(m.get("spec_version", -1)) != SPEC_VERSION:
            raise UnsupportedModelError(f"nvnmd-v0 image spec version {m.get('spec_version')} (this build reads {SPEC_VERSION})")
        try:
            model = cls(type_map=list(m["type_map"]), rcut=float(m["rcut"]), sel=[int(x) for x in m["sel"]],
                        nix=int(m["nix"]), m1=int(m["m1"]), m2=int(m["m2"]), max_nnei=int(m["max_nnei"]),
                        cfg_u2s=_intervals(m["cfg_u2s"]), cfg_s2g=_intervals(m["cfg_s2g"]),
                        s_h=s["s_h"], s_h_grad=s["s_h_grad"], g=s["g"], g_grad=s["g_grad"], e_shift=s["e_shift"],
                        w=[s[f"w{k}"] for k in range(N_LAYERS)], b=[s[f"b{k}"] for k in range(N_LAYERS)])
        except KeyError as exc:
            raise CorruptFileError(f"nvnmd-v0 image lacks {exc}") from None
        for name in ("s_h", "s_h_grad", "g", "g_grad"):
            arr = getattr(model, name)
            if arr.dtype != np.float64 or not np.array_equal(flt(arr), arr):
                raise CorruptFileError(f"nvnmd-v0 image table {name} is not in the flt format")
        model.validate()
        return model


def _intervals(rows) -> list[list[float]]:
    return [[float(r[0]), float(r[1]), float(r[2]), int(r[3]), int(r[4])] for r in rows]
