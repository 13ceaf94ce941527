"""The NVQ1LMP file: what the nvq1 C kernel needs, for a host outside Python (pair_style nvq1).

Python decodes an image once (nvnmd.sim.nvq1.fast.FastKernel fills the kernel's three
parameter blocks, nvq1_kernel.h); this module writes those blocks as they lie in memory, with
every pointer field replaced by the 1-based index of the float64 array it points to (0 for
NULL), the arrays themselves, and a few `key=value` lines the pair style reads (type map,
cutoff, fixed-point fractions). The reader (csrc/nvq1_lmp_file.h) checks the magic, version,
CRC-32C and each block's size against its own sizeof, then points the fields back at the
arrays: it needs no knowledge of the fields themselves. Layout: lammps_nvq1/NVQ1LMP.md.
"""

from __future__ import annotations

import struct

import numpy as np

from nvnmd.errors import NvnmdError

MAGIC = b"NVQ1LMP\0"
VERSION = 1
BLOCKS = ("nvq1_fwd_params", "nvq1_bwd_params", "nvq1_fit_params")


def _pointer_offsets(ffi, ctype, base=0):
    """Byte offsets of every pointer inside a struct/array type, in order."""
    if ctype.kind == "pointer":
        return [base]
    if ctype.kind == "array":
        step = ffi.sizeof(ctype.item)
        return [o for k in range(ctype.length) for o in _pointer_offsets(ffi, ctype.item, base + k * step)]
    if ctype.kind == "struct":
        return [o for _, f in ctype.fields for o in _pointer_offsets(ffi, f.type, base + f.offset)]
    return []


def _pointer_types(ffi, ctype):
    if ctype.kind == "pointer":
        return [ctype.cname]
    if ctype.kind == "array":
        return _pointer_types(ffi, ctype.item) * ctype.length
    if ctype.kind == "struct":
        return [t for _, f in ctype.fields for t in _pointer_types(ffi, f.type)]
    return []


def kernel_blocks(image):
    """(ffi, [fwd, bwd, fit] cffi structs, arrays they point into, model) from an image."""
    from nvnmd.sim.nvq1.fast import FastKernel
    from nvnmd.sim.nvq1.model import Nvq1Model

    if image.profile != "nvq1":
        raise NvnmdError(f"the LAMMPS pair style runs nvq1 images; this one is profile {image.profile!r}")
    model = Nvq1Model.from_image(image)
    kern = FastKernel(model)
    if kern.clib is None:
        raise NvnmdError("the nvq1 C kernel is unavailable (no C compiler?): cannot export the model for LAMMPS")
    return kern.clib[0], [kern._fwd, kern._bwd, kern._fitp], kern._c_keep, model


def meta_lines(image, model) -> dict:
    from nvnmd.backends.guard import ShortRangeGuard
    from nvnmd.formats import COORD, ENERGY, FORCE, VIRIAL

    guard = ShortRangeGuard.for_image(image, list(model.type_map))
    nt = model.ntypes
    r_out = guard.r_out if guard is not None else np.zeros((nt, nt))
    return {"type_map": " ".join(model.type_map), "rcut": repr(float(model.rcut)),
            "sel": " ".join(str(int(s)) for s in model.sel),
            "frac_coord": COORD.frac, "frac_force": FORCE.frac, "frac_energy": ENERGY.frac,
            "frac_virial": VIRIAL.frac, "frac_pair_force": int(model.frac["p"]),
            "guard_r_out": " ".join(repr(float(x)) for x in np.asarray(r_out).reshape(-1)),
            "image_sha256": image.digest()}


def to_bytes(image) -> bytes:
    from nvnmd.host.protocol import crc32c

    ffi, blocks, keep, model = kernel_blocks(image)
    index = {a.ctypes.data: k + 1 for k, a in enumerate(keep)}
    out = bytearray()
    meta = "".join(f"{k}={v}\n" for k, v in meta_lines(image, model).items()).encode()
    out += MAGIC + struct.pack("<II", VERSION, len(BLOCKS))
    out += struct.pack("<Q", len(meta)) + meta + bytes(-len(meta) % 8)
    for name, blk in zip(BLOCKS, blocks):
        ctype = ffi.typeof(blk).item
        if ctype.cname.replace("struct ", "") != name:
            raise NvnmdError(f"kernel block {ctype.cname} where {name} was expected")
        raw = bytearray(ffi.buffer(blk))
        offs = _pointer_offsets(ffi, ctype)
        for off, cname in zip(offs, _pointer_types(ffi, ctype)):
            addr = int.from_bytes(raw[off:off + 8], "little")
            if addr and cname not in ("double *", "double const *"):
                if cname == "void *":  # the BLAS dgemm hook: the pair style uses the kernel's loops (same bits)
                    addr = 0
                else:
                    raise NvnmdError(f"{name}: cannot export a {cname} field")
            if addr and addr not in index:
                raise NvnmdError(f"{name}: a pointer at byte {off} points outside the kernel's arrays")
            raw[off:off + 8] = struct.pack("<Q", index[addr] if addr else 0)
        out += struct.pack("<QQ", len(raw), len(offs)) + struct.pack(f"<{len(offs)}Q", *offs)
        out += raw + bytes(-len(raw) % 8)
    out += struct.pack("<Q", len(keep))
    for a in keep:
        a = np.ascontiguousarray(a, dtype="<f8")
        out += struct.pack("<Q", a.size) + a.tobytes()
    out += struct.pack("<I", crc32c(bytes(out)))
    return bytes(out)


def write(image, path) -> None:
    from nvnmd.image import write_atomic

    from pathlib import Path

    write_atomic(Path(path), to_bytes(image))
