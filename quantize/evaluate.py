"""Accuracy of a quantized image on labelled frames: vs the labels and vs the float student.

Shared by `nvnmd test` and the quantize report. Metrics follow `dp test`: energy per atom,
force components and virial per atom, RMSE and MAE; the float student is evaluated with
deepmd-kit's DeepPot on the very same frames.
"""

from __future__ import annotations

import numpy as np

from nvnmd.errors import CorruptFileError, NeighborOverflowError, NvnmdError, UnsupportedModelError

# A sound image is within ~1e-5 eV/atom and ~1e-4 eV/Å of its float student (rounding only); a
# gap 100x that means the image computes another model than deepmd-kit does (a misread model file).
FLOAT_AGREEMENT = {"energy_per_atom": (1e-3, "eV/atom"), "force": (2e-2, "eV/Å")}


def run_image(backend, frames):
    """Quantized predictions per frame, plus saturation/overflow totals."""
    out, sats, over, counters = [], 0, 0, {}
    for k, fr in enumerate(frames):
        try:
            res = backend.sim.compute(backend.request(fr.coord, fr.types, fr.cell))
        except NvnmdError as exc:  # name the frame the board refused
            raise type(exc)(f"{fr.system} (frame {k} of {len(frames)}): {exc}") from None
        e, f, v, _ = res.to_float()
        out.append((e, f, v.reshape(9)))
        sats += res.saturations
        over += res.overflow_atoms
        for k, c in res.counters.items():
            counters[k] = counters.get(k, 0) + c
    return out, {"saturations": sats, "overflow_atoms": over, "counters": counters}


def run_deeppot(model_path, frames, type_map: list[str] | None = None):
    """The float model's predictions with deepmd-kit's DeepPot. `type_map` names the frames'
    type indices (the image's type map); the model's own order may differ, so types are
    mapped by element name."""
    from pathlib import Path

    from deepmd.infer import DeepPot

    from nvnmd.quiet import quiet_native

    if not Path(model_path).exists():
        raise FileNotFoundError(2, "No such file", str(model_path))
    try:
        with quiet_native():
            dp = DeepPot(str(model_path))
    except Exception as exc:  # deepmd-kit raises many types for files it cannot read
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CorruptFileError(f"{model_path}: deepmd-kit cannot read this model ({first[:160]})") from None
    remap = None
    if type_map is not None:
        theirs = list(dp.get_type_map())
        missing = [e for e in type_map if e not in theirs]
        if missing:
            raise NvnmdError(f"{model_path}: elements {missing} of the image are not in this model's type map {theirs}")
        remap = np.array([theirs.index(e) for e in type_map])
    out = []
    for fr in frames:
        types = fr.types if remap is None else remap[fr.types]
        e, f, v = dp.eval(fr.coord.reshape(1, -1), fr.cell.reshape(1, 9), types)[:3]
        out.append((float(e[0, 0]), f[0], v[0].reshape(9)))
    return out


def compare(pred, ref, frames, what_ref: str) -> dict:
    """RMSE/MAE of pred against ref (a list like pred, or 'labels')."""
    de, df, dv = [], [], []
    for k, fr in enumerate(frames):
        e, f, v = pred[k]
        if ref == "labels":
            if fr.energy is None:
                continue
            re_, rf, rv = fr.energy, fr.forces, fr.virial
        else:
            re_, rf, rv = ref[k]
        n = fr.natoms
        de.append((e - re_) / n)
        if rf is not None:
            df.append((f - rf).ravel())
        if rv is not None:
            dv.append((v - np.asarray(rv).reshape(9)) / n)
    res = {"against": what_ref, "frames": len(de)}
    for key, arr in (("energy_per_atom", de), ("force", df), ("virial_per_atom", dv)):
        if len(arr):
            a = np.concatenate([np.atleast_1d(x) for x in arr])
            res[key] = {"rmse": float(np.sqrt(np.mean(a * a))), "mae": float(np.mean(np.abs(a)))}
    return res


def check_against_float(result: dict, source) -> None:
    """Refuse an image whose RMSE against its float student (`compare(pred, float_pred, ...)`) is
    beyond rounding; a NaN reference (deepmd-kit's numpy backend has no forces) is not judged."""
    for key, (bound, unit) in FLOAT_AGREEMENT.items():
        rmse = result.get(key, {}).get("rmse")
        if rmse is not None and np.isfinite(rmse) and rmse > bound:
            raise UnsupportedModelError(
                f"{source}: the quantized image is {rmse:.3g} {unit} RMSE off deepmd-kit's own evaluation of this "
                f"model on {result['frames']} calibration frames (rounding gives < {bound / 100:g}): the model was "
                f"not read as deepmd-kit runs it; refused")


def image_against_float(backend, model_path, frames, type_map: list[str]):
    """The image (on `backend`) and deepmd-kit's evaluation of its model on the same frames, refused by
    check_against_float beyond rounding: (pred, stats, float_pred, the comparison)."""
    pred, stats = run_image(backend, frames)
    float_pred = run_deeppot(model_path, frames, type_map)
    result = compare(pred, float_pred, frames, "float student")
    check_against_float(result, model_path)
    return pred, stats, float_pred, result


def check_no_overflow(stats: dict) -> None:
    if stats["overflow_atoms"]:
        raise NeighborOverflowError(
            f"{stats['overflow_atoms']} atom evaluations had more in-cutoff neighbours of a type than sel")


def format_table(results: list[dict]) -> str:
    lines = [f"{'against':<18}{'frames':>7}{'E/atom RMSE':>14}{'E/atom MAE':>13}{'F RMSE':>11}{'F MAE':>11}"
             f"{'V/atom RMSE':>14}{'V/atom MAE':>13}",
             f"{'':<18}{'':>7}{'meV/atom':>14}{'meV/atom':>13}{'meV/Å':>11}{'meV/Å':>11}{'meV/atom':>14}{'meV/atom':>13}"]
    for r in results:
        def cell(key, stat, width):
            return f"{r[key][stat] * 1e3:>{width}.4f}" if key in r else f"{'-':>{width}}"
        lines.append(f"{r['against']:<18}{r['frames']:>7}" + cell("energy_per_atom", "rmse", 14) +
                     cell("energy_per_atom", "mae", 13) + cell("force", "rmse", 11) + cell("force", "mae", 11) +
                     cell("virial_per_atom", "rmse", 14) + cell("virial_per_atom", "mae", 13))
    return "\n".join(lines)
