"""RTL against the simulator, frame by frame: what `nvnmd rtl check` reports and tests assert.

Everything the board returns is compared exactly: total and per-atom energies, forces, virial,
overflow atoms, the saturation total and every per-site counter (sim/nvq1/sites.py). The first
difference is located down to the array element, so a failing frame says where to look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIELDS = ("energy", "atom_energy", "forces", "virial", "overflow_atoms", "saturations")


def nonzero_counters(res) -> dict:
    return {k: int(v) for k, v in sorted((res.counters or {}).items()) if int(v)}


def first_difference(rtl, sim) -> str | None:
    """None when bit-identical, else '<field>[index]: rtl X, sim Y' for the first mismatch."""
    for name in FIELDS:
        a, b = np.asarray(getattr(rtl, name)), np.asarray(getattr(sim, name))
        if a.shape != b.shape:
            return f"{name}: shape {a.shape} (rtl) vs {b.shape} (sim)"
        diff = np.argwhere(a != b)
        if diff.size:
            idx = tuple(int(i) for i in diff[0])
            where = f"[{', '.join(map(str, idx))}]" if idx else ""
            return f"{name}{where}: rtl {int(a[idx])}, sim {int(b[idx])} ({len(diff)} element(s) differ)"
    cr, cs = nonzero_counters(rtl), nonzero_counters(sim)
    if cr != cs:
        site = next(k for k in sorted(set(cr) | set(cs)) if cr.get(k, 0) != cs.get(k, 0))
        return f"counter {site}: rtl {cr.get(site, 0)}, sim {cs.get(site, 0)}"
    return None


@dataclass
class FrameCheck:
    index: int
    system: str
    natoms: int
    width: int  # list row width K
    cycles: int  # the core's own count
    model_cycles: int | None  # the closed-form schedule (fpga/rtl/core/cycles.py)
    saturations: int
    difference: str | None

    @property
    def identical(self) -> bool:
        return self.difference is None


@dataclass
class CheckReport:
    frames: list[FrameCheck] = field(default_factory=list)

    @property
    def identical(self) -> int:
        return sum(f.identical for f in self.frames)

    @property
    def first_mismatch(self) -> FrameCheck | None:
        return next((f for f in self.frames if not f.identical), None)

    def summary(self) -> str:
        n = len(self.frames)
        atoms = sum(f.natoms for f in self.frames)
        cyc = sum(f.cycles for f in self.frames)
        lines = [f"frames compared: {n} ({atoms} atoms), bit-identical: {self.identical}/{n}"]
        if atoms:
            lines.append(f"core cycles: {cyc} ({cyc / atoms:.0f} per atom)")
        modelled = [f for f in self.frames if f.model_cycles is not None]
        if modelled:
            same = sum(f.model_cycles == f.cycles for f in modelled)
            lines.append(f"cycle model matches the core's count on {same}/{len(modelled)} frames")
        bad = self.first_mismatch
        lines.append("first mismatch: none" if bad is None else
                     f"first mismatch: frame {bad.index} ({bad.system}, {bad.natoms} atoms): {bad.difference}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"frames": len(self.frames), "identical": self.identical,
                "first_mismatch": None if self.first_mismatch is None else self.first_mismatch.__dict__,
                "per_frame": [f.__dict__ for f in self.frames]}


def check_frames(core, sim, requests, systems=None, progress: bool = False) -> CheckReport:
    """Run every request on `core` (RtlCore) and `sim` (the simulator); compare bit for bit."""
    from tqdm import tqdm

    try:
        from nvnmd.fpga.rtl.core.cycles import frame_cycles
    except ImportError:  # the closed-form model is optional for the comparison itself
        frame_cycles = None
    report = CheckReport()
    it = tqdm(list(enumerate(requests)), desc="rtl vs sim", unit="frame", disable=not progress)
    for i, req in it:
        ref = sim.compute(req)
        got = core.compute(req)
        model = int(frame_cycles(core.model, req, core.lanes)) if frame_cycles else None
        report.frames.append(FrameCheck(index=i, system=(systems[i] if systems else ""), natoms=req.natoms,
                                        width=int(np.asarray(req.nlist).shape[1]), cycles=core.last_cycles,
                                        model_cycles=model, saturations=int(ref.saturations),
                                        difference=first_difference(got, ref)))
    return report
