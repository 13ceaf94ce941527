"""Profile "nvq1": the board's fixed constants and the decoded model (image <-> arrays).

Owns the facts fpga/SPEC.md states as fixed for every nvq1 board (limits, grid steps, fixed
fractions) and `Nvq1Model`, the in-memory form of an nvq1 image: integer tables and weights
plus the per-model fractions the quantizer chose, validated on load so a damaged or foreign
image is refused with a clear error instead of producing wrong numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nvnmd.errors import CorruptFileError, UnsupportedModelError
from nvnmd.image import Image

PROFILE = "nvq1"
SPEC_VERSION = 1

# Board limits (SPEC.md §1).
MAX_TYPES = 8
MAX_SEL_TOTAL = 128
MAX_NEIGHBORS = 256  # widest nlist row accepted (Verlet lists with a skin)
MAX_M1 = 64
MAX_M2 = 16
MAX_WIDTH = 256
MAX_RCUT = 7.9  # |r_d| < 8 Å is the in-range window of the 24-bit relative coordinates

# Fixed formats (SPEC.md §2).
F_COORD = 20  # relative coordinates r_ij (= nvnmd.formats.COORD)
R_LIM = 1 << 23  # |r_d| < 8 Å
F_U = 40  # u = r², exact square of the 24-bit components
LU = 3  # u grid step 2^-3 Å²
LS = 5  # s̃ grid step 2^-5
LT = 5  # tanh grid step 2^-5, 256 segments over [0, 8)
TBITS = 17  # segment offset t, unsigned
F_S = 22  # s̃ and R̃ (27-bit, ±16)
F_Z = 22  # fitting pre-activations (27-bit, ±16)
F_A = 24  # fitting activations (27-bit, ±8)
F_TANH = 25  # tanh table values
F_DT = 16  # tanh' (18-bit)
F_R18 = 14  # 18-bit copy of r for the virial
F_E = 24  # energies (= nvnmd.formats.ENERGY)
F_F = 19  # forces (= nvnmd.formats.FORCE)
F_V = 24  # virial (= nvnmd.formats.VIRIAL)
W_BITS = 18
DATA_BITS = 27
SHORT_SHIFT = DATA_BITS - W_BITS  # 27-bit -> 18-bit copies drop 9 bits

# Fractions chosen per model by the quantizer (calibrated ones marked in SPEC.md §3);
# "Gq" is the number of bits the G slope drops on its way to 18 bits (not a fraction).
FRAC_KEYS = ("h", "Gt", "Gq", "T", "D", "gT", "gR", "gG", "gs", "gh", "gu", "p")


@dataclass
class Layer:
    w: np.ndarray  # int [ntypes, nin, nout], 18-bit
    e: np.ndarray  # int [ntypes, nout], per-column exponent: w = W * 2^-e
    b: np.ndarray  # int [ntypes, nout], bias at F_Z (hidden) — final layer: unused (folded in e_const)
    idt: np.ndarray | None  # int [ntypes, nout], 18-bit at f_idt
    f_idt: int
    shortcut: str  # "none" | "identity" | "concat"
    final: bool


@dataclass
class Nvq1Model:
    type_map: list[str]
    rcut: float
    rcut_smth: float
    sel: list[int]
    m1: int
    m2: int
    type_one_side: bool
    u_cut: int  # in-range iff u < u_cut (F_U codes)
    k_lo: int  # lowest u segment (close-contact clamp)
    s0: int  # G grid origin, F_S code, multiple of 2^(F_S-LS)
    frac: dict  # FRAC_KEYS -> int
    f_g: list[int]  # gradient fraction at the input of each fitting layer
    u_tab: np.ndarray  # int [ntypes, 4, N_u+1]: s̃ value, s̃ slope, h̃ value, h̃ slope
    g_tab: np.ndarray  # int [ntab, 2, N_s+1, M1]: G value, G slope (F_Gt)
    tanh_tab: np.ndarray  # int [2, 2^(LT+3)+1]: value, slope (F_TANH)
    pad: np.ndarray  # int [ntypes, ntypes, M1]: s̃_pad·G(s̃_pad) product codes (F_S + F_G)
    layers: list[Layer]
    e_const: np.ndarray  # int [ntypes], per-type energy constant (F_E)
    meta_extra: dict = field(default_factory=dict)

    @property
    def ntypes(self) -> int:
        return len(self.type_map)

    @property
    def nnei(self) -> int:
        return int(sum(self.sel))

    @property
    def n_u(self) -> int:
        return self.u_tab.shape[2] - 1

    @property
    def n_s(self) -> int:
        return self.g_tab.shape[2] - 1

    @property
    def table_floor(self) -> float:
        """r_lo in Å: pairs closer than this are clamped to the first valid u segment (§5.2)."""
        return u_grid_radius(self.k_lo)

    def gtab_index(self, ti, tj):
        return tj if self.type_one_side else ti * self.ntypes + tj

    # -- image ----------------------------------------------------------------------
    def to_image(self) -> Image:
        sections = {
            "u_tab": self.u_tab.astype(np.int32),
            "g_tab": self.g_tab.astype(np.int32),
            "tanh_tab": self.tanh_tab.astype(np.int32),
            "pad": self.pad.astype(np.int64),
            "e_const": self.e_const.astype(np.int64),
        }
        layers = []
        for k, layer in enumerate(self.layers):
            sections[f"fit{k}_w"] = layer.w.astype(np.int32)
            sections[f"fit{k}_e"] = layer.e.astype(np.int8)
            sections[f"fit{k}_b"] = layer.b.astype(np.int32)
            if layer.idt is not None:
                sections[f"fit{k}_idt"] = layer.idt.astype(np.int32)
            layers.append({"f_idt": layer.f_idt, "shortcut": layer.shortcut, "final": layer.final,
                           "idt": layer.idt is not None})
        meta = {
            "spec_version": SPEC_VERSION,
            "type_map": list(self.type_map),
            "rcut": self.rcut,
            "rcut_smth": self.rcut_smth,
            "sel": list(self.sel),
            "m1": self.m1,
            "m2": self.m2,
            "type_one_side": self.type_one_side,
            "u_cut": int(self.u_cut),
            "k_lo": int(self.k_lo),
            "s0": int(self.s0),
            "frac": {k: int(v) for k, v in self.frac.items()},
            "f_g": [int(v) for v in self.f_g],
            "layers": layers,
            "fixed": fixed_formats(),
            **self.meta_extra,
        }
        return Image(profile=PROFILE, meta=meta, sections=sections)

    @classmethod
    def from_image(cls, image: Image) -> "Nvq1Model":
        if image.profile != PROFILE:
            raise UnsupportedModelError(f"image profile '{image.profile}' is not '{PROFILE}'")
        meta, sec = image.meta, image.sections
        try:
            if int(meta["spec_version"]) != SPEC_VERSION:
                raise UnsupportedModelError(
                    f"nvq1 image of spec version {meta['spec_version']}; this nvnmd reads {SPEC_VERSION}")
            if meta.get("fixed") != fixed_formats():
                raise CorruptFileError("nvq1 image was written with different fixed formats than this simulator's")
            layers = []
            for k, lm in enumerate(meta["layers"]):
                layers.append(Layer(
                    w=sec[f"fit{k}_w"].astype(np.int64), e=sec[f"fit{k}_e"].astype(np.int64),
                    b=sec[f"fit{k}_b"].astype(np.int64),
                    idt=sec[f"fit{k}_idt"].astype(np.int64) if lm["idt"] else None,
                    f_idt=int(lm["f_idt"]), shortcut=str(lm["shortcut"]), final=bool(lm["final"])))
            model = cls(
                type_map=[str(t) for t in meta["type_map"]], rcut=float(meta["rcut"]),
                rcut_smth=float(meta["rcut_smth"]), sel=[int(s) for s in meta["sel"]],
                m1=int(meta["m1"]), m2=int(meta["m2"]), type_one_side=bool(meta["type_one_side"]),
                u_cut=int(meta["u_cut"]), k_lo=int(meta["k_lo"]), s0=int(meta["s0"]),
                frac={k: int(meta["frac"][k]) for k in FRAC_KEYS}, f_g=[int(v) for v in meta["f_g"]],
                u_tab=sec["u_tab"].astype(np.int64), g_tab=sec["g_tab"].astype(np.int64),
                tanh_tab=sec["tanh_tab"].astype(np.int64), pad=sec["pad"].astype(np.int64),
                layers=layers, e_const=sec["e_const"].astype(np.int64),
                meta_extra={k: v for k, v in meta.items() if k in ("source", "calibration", "student", "closest_pairs")},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"nvq1 image is incomplete or malformed ({type(exc).__name__}: {exc})") from None
        model.validate()
        return model

    def validate(self) -> None:
        """Shapes and ranges a board would check before accepting the image."""
        nt, m1 = self.ntypes, self.m1
        ntab = nt if self.type_one_side else nt * nt
        checks = [
            (1 <= nt <= MAX_TYPES, f"{nt} types (board holds {MAX_TYPES})"),
            (len(self.sel) == nt and self.u_tab.shape[0] == nt,
             f"type_map {' '.join(self.type_map)} names {nt} elements, but sel and the u tables are for "
             f"{len(self.sel)} and {self.u_tab.shape[0]}"),
            (sum(self.sel) <= MAX_SEL_TOTAL, f"sel {self.sel} (sum ≤ {MAX_SEL_TOTAL})"),
            (0 < self.rcut <= MAX_RCUT, f"rcut {self.rcut}"),
            (self.u_tab.shape[:2] == (nt, 4), "u table shape"),
            (self.g_tab.shape[0] == ntab and self.g_tab.shape[1] == 2 and self.g_tab.shape[3] == m1, "G table shape"),
            (self.tanh_tab.shape == (2, (8 << LT) + 1), "tanh table shape"),
            (self.pad.shape == (nt, nt, m1), "padding constants shape"),
            (self.e_const.shape == (nt,), "energy constants shape"),
            (0 < self.m2 <= min(m1, MAX_M2) and m1 <= MAX_M1, "M1/M2"),
            (len(self.f_g) == len(self.layers), "gradient fractions"),
            (0 <= self.k_lo < self.n_u and self.u_cut <= (self.n_u << (F_U - LU)), "u grid"),
        ]
        nin = m1 * self.m2
        for layer in self.layers:
            ok = layer.w.shape[0] == nt and layer.w.shape[1] == nin and layer.w.shape[2] <= MAX_WIDTH
            checks.append((ok, "fitting layer shapes"))
            checks.append((bool(np.all(np.abs(layer.w) < (1 << (W_BITS - 1)))), "fitting weights exceed 18 bits"))
            nin = layer.w.shape[2]
        checks.append((self.layers[-1].final and self.layers[-1].w.shape[2] == 1, "final layer"))
        for ok, what in checks:
            if not ok:
                raise CorruptFileError(f"nvq1 image fails validation: {what}")


def u_grid_radius(k: int) -> float:
    """The distance (Å) at u grid point k: r = sqrt(k * 2^-LU) (SPEC §5.2)."""
    return math.sqrt(int(k) * 2.0**-LU)


def fixed_formats() -> dict:
    """The fixed constants, written into every image and compared on load."""
    return {k: v for k, v in dict(
        F_COORD=F_COORD, F_U=F_U, LU=LU, LS=LS, LT=LT, TBITS=TBITS, F_S=F_S, F_Z=F_Z, F_A=F_A,
        F_TANH=F_TANH, F_DT=F_DT, F_R18=F_R18, F_E=F_E, F_F=F_F, F_V=F_V, W_BITS=W_BITS, DATA_BITS=DATA_BITS,
    ).items()}


def hermite_coefficients(y: np.ndarray, m: np.ndarray, axis: int = 0):
    """Integer cubic coefficients (a, b, c, d) of every segment from grid values/slopes (SPEC §4)."""
    y0 = np.take(y, np.arange(y.shape[axis] - 1), axis=axis)
    y1 = np.take(y, np.arange(1, y.shape[axis]), axis=axis)
    m0 = np.take(m, np.arange(m.shape[axis] - 1), axis=axis)
    m1 = np.take(m, np.arange(1, m.shape[axis]), axis=axis)
    a = 2 * (y0 - y1) + m0 + m1
    b = 3 * (y1 - y0) - 2 * m0 - m1
    return a, b, m0, y0
