"""The explore stage of `nvnmd distill`: DP-GEN-style active learning with an ensemble of students.

Owns the rounds between `label` and `train` (on when DistillConfig.ensemble_size is 2 to 4).
Round k, in explore/iter.KKK/:

    train.M/     ensemble_size students (dp --tf train, explore_train_steps each, seeds differing by
                 M and k) on data/train and every earlier round's data/iter.*
    md/          MD with student 0 (the deepmd backend, the engine of teacher_md, guarded by its
                 closest-pairs sidecar like a deployed student) from each perturbed structure at each
                 exploration temperature and each volume scale of teacher_md; a trajectory that blows up
                 keeps its frames and a FAILED note
    devi.npz     per trajectory: each visited frame's force deviation, DP-GEN's definition: per atom
                 sigma_i = sqrt(mean_m |F_m,i - <F_i>|^2) over the models, the frame's the max over
                 atoms (also written as DP-GEN's model_devi.out)
    candidates   frames with trust_lo <= sigma < trust_hi, a seeded random subset of at most
                 max_candidates per composition; "accurate" below trust_lo, "failed" at or above hi
    label/       teacher labels of the candidates (the label stage's worker pool and chunk files)
                 -> the |F| filter of the label stage -> data/iter.KKK (a deepmd system per composition)
    round.json   the round's record, written last: a round with it is never redone

The rounds stop when every composition has at least accurate_fraction of its explored frames
below trust_lo (converged), when a round finds no candidate (the next would train on the same
data), or after explore_rounds. A round killed mid-way continues from what it wrote (training
checkpoints, MD checkpoints, deviation files, the candidates, labelled chunks) and writes its
system under the same name, so no frame is ever added twice.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nvnmd.distill import data as D
from nvnmd.errors import NvnmdError
from nvnmd.image import write_atomic

DEVI_COLUMNS = ("step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e")


def round_dir(outdir: Path, k: int) -> Path:
    return Path(outdir) / "explore" / f"iter.{k:03d}"


def data_dir(outdir: Path, k: int) -> Path:
    return Path(outdir) / "data" / f"iter.{k:03d}"


def train_seed(cfg, k: int, m: int) -> int:
    """Student m of round k (never the final student's cfg.seed % 2**31)."""
    return (cfg.seed + 1_000_003 * (k + 1) + 7919 * m) % 2**31


def md_seed(comp, k: int, j: int, T: float, v: float = 1.0) -> int:
    at_volume = 0 if v == 1.0 else 10_000_000 * int(round(1000 * v))  # scale 1 keeps the seeds made before scales
    return comp.seed + 3_000_000 + 100_000 * k + 1000 * j + int(round(T)) + at_volume


SEEDS = {"explore_train": "(seed + 1000003 (k + 1) + 7919 m) mod 2^31, student m of round k",
         "explore_md": "seed + 3000000 + 100000 k + 1000 j + T (perturbed structure j) + 10^7 round(1000 v) "
                       "at a volume scale v other than 1",
         "explore_pick": "numpy default_rng([seed, composition index, k])"}


def force_deviation(forces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """forces [models, frames, atoms, 3] -> max, min and mean over atoms of each frame's per-atom
    sigma_i = sqrt(mean over models of |F_m,i - <F_i>|^2) (DP-GEN's max_devi_f, min_devi_f, avg_devi_f)."""
    f = np.asarray(forces, dtype=np.float64)
    sigma = np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=-1), axis=0))
    return sigma.max(axis=-1), sigma.min(axis=-1), sigma.mean(axis=-1)


def ensemble_predictions(models, coords, cells, types) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energies [M, F], forces [M, F, N, 3], virials [M, F, 9] of frames under every DeepPot model."""
    coords = np.asarray(coords, dtype=np.float64)
    nf, na = coords.shape[:2]
    es, fs, vs = [], [], []
    for dp in models:
        e, f, v = dp.eval(coords.reshape(nf, -1), np.asarray(cells, dtype=np.float64).reshape(nf, 9), types)[:3]
        es.append(np.reshape(e, nf))
        fs.append(np.reshape(f, (nf, na, 3)))
        vs.append(np.reshape(v, (nf, 9)))
    return np.array(es), np.array(fs), np.array(vs)


def deviation_table(steps, energies, forces, virials, natoms: int) -> np.ndarray:
    """DP-GEN's model_devi.out columns (DEVI_COLUMNS): virial and energy deviations per atom."""
    v = np.std(np.asarray(virials) / natoms, axis=0)
    fmax, fmin, favg = force_deviation(forces)
    e = np.std(np.asarray(energies) / natoms, axis=0)
    return np.column_stack([steps, v.max(-1), v.min(-1), v.mean(-1), fmax, fmin, favg, e])


def rounds_done(outdir: Path) -> list[dict]:
    """The records of the finished rounds, in order (round.json of each)."""
    out = []
    k = 0
    while (round_dir(outdir, k) / "round.json").exists():
        out.append(json.loads((round_dir(outdir, k) / "round.json").read_text()))
        k += 1
    return out


def training_dirs(outdir: Path, rounds: list[dict]) -> list[Path]:
    """data/train and the data/iter.* of the given rounds that labelled frames."""
    return [Path(outdir) / "data" / "train"] + [Path(outdir) / r["data"] for r in rounds if r.get("data")]


def stop_reason(rec: dict, cfg) -> str | None:
    if rec["status"] == "converged":
        return "converged"
    if rec["status"] == "no candidates":
        return "no candidates"
    if rec["round"] + 1 >= cfg.explore_rounds:
        return "rounds exhausted"
    return None


def explore(cfg, outdir: Path, comps, tmap, sel_for, md_config, beat, on_round=None, log_fn=print) -> tuple[list, dict]:
    """Every round not finished yet; returns (outputs, info) for the manifest. `sel_for(dirs)`:
    the sel of data folders (refuses one beyond the board); `md_config(T, steps, frames, seed)`:
    the MDConfig kwargs of teacher_md; `on_round(records)`: called after each finished round."""
    records = rounds_done(outdir)
    for rec in records:
        log_fn(f"[explore] round {rec['round']} done before: {summary(rec)}")
    while not records or stop_reason(records[-1], cfg) is None:
        k = len(records)
        t0 = time.time()
        rec = run_round(cfg, outdir, comps, tmap, k, records, sel_for, md_config, beat)
        records.append(rec)
        log_fn(f"[explore] round {k} finished in {time.time() - t0:.0f} s: {summary(rec)}")
        if on_round:
            on_round(records)
    outs = [round_dir(outdir, r["round"]) / "round.json" for r in records]
    outs += [p / "type.raw" for r in records if r.get("data") for p in _systems(outdir / r["data"])]
    return outs, {"rounds": records, "stopped": stop_reason(records[-1], cfg),
                  "labelled": sum(r["labelled"] for r in records),
                  "data": [r["data"] for r in records if r.get("data")]}


def summary(rec: dict) -> str:
    return (f"{rec['explored']} frames explored, {100 * rec['accurate_fraction']:.1f} % accurate, "
            f"{rec['candidates']} candidates, {rec['failed']} failed, {rec['labelled']} labelled ({rec['status']})")


def _systems(path: Path) -> list[Path]:
    return sorted(p.parent for p in Path(path).rglob("type.raw"))


def _times(rdir: Path) -> dict:
    path = rdir / "times.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _timed(rdir: Path, what: str, fn):
    """Run one sub-step of a round; its wall time is recorded the first time it completes (a
    resumed round keeps the times of the sub-steps finished before the kill)."""
    t0 = time.time()
    result = fn()
    times = _times(rdir)
    if what not in times:
        times[what] = round(time.time() - t0, 1)
        write_atomic(rdir / "times.json", (json.dumps(times) + "\n").encode())
    return result


def run_round(cfg, outdir: Path, comps, tmap, k: int, before: list[dict], sel_for, md_config, beat) -> dict:
    rdir = round_dir(outdir, k)
    rdir.mkdir(parents=True, exist_ok=True)
    dirs = training_dirs(outdir, before)
    models = _timed(rdir, "train", lambda: _train(cfg, outdir, rdir, k, tmap, sel_for(dirs), dirs, beat))
    temps = cfg.exploration_temperatures
    # at every volume of teacher_md too: the student must be trusted where the teacher's runs went
    trajs = [(c, j, T, v, c.dir(rdir, "md") / D.run_name(j, T, v))
             for c in comps for j in range(cfg.md_structures) for T in temps for v in cfg.volume_scales]
    _timed(rdir, "md", lambda: _explore_md(cfg, outdir, models[0], trajs, k, md_config, beat))
    devi = _timed(rdir, "deviation", lambda: _deviations(cfg, models, trajs, tmap, beat))
    per, picked = {}, {}
    for c in comps:
        mine = [d for d, (cc, *_) in zip(devi, trajs) if cc is c]
        per[c.name], picked[c.name] = _select(cfg, c, k, mine, rdir)
    explored = sum(p["explored"] for p in per.values())
    accurate = sum(p["accurate"] for p in per.values())
    rec = {"round": k, "models": len(models), "train_steps": cfg.explore_train_steps,
           "seeds": [train_seed(cfg, k, m) for m in range(len(models))], "temperatures_K": list(temps),
           "trajectories": len(trajs), "explored": explored, "accurate": accurate,
           "candidates": sum(p["candidates"] for p in per.values()), "failed": sum(p["failed"] for p in per.values()),
           "accurate_fraction": accurate / max(1, explored), "selected": sum(p["selected"] for p in per.values()),
           "blown_up": [str(t[-1].relative_to(rdir)) for t in trajs if (t[-1] / "FAILED").exists()],
           "training_data": [str(d.relative_to(outdir)) for d in dirs]}
    if all(p["accurate_fraction"] >= cfg.accurate_fraction for p in per.values()):
        rec["status"] = "converged"
    elif not rec["selected"]:
        rec["status"] = "no candidates"
    else:
        rec["status"] = "labelled"
    labelled = {}
    if rec["status"] == "labelled":
        labelled = _timed(rdir, "label", lambda: _label(cfg, outdir, comps, tmap, k, picked, rdir, beat))
    for c in comps:
        per[c.name].update(labelled.get(c.name, {"labelled": 0, "dropped_max_force": 0}))
    rec["labelled"] = sum(p["labelled"] for p in per.values())
    rec["dropped_max_force"] = sum(p["dropped_max_force"] for p in per.values())
    rec["data"] = str(data_dir(outdir, k).relative_to(outdir)) if rec["labelled"] else None
    rec["frames_sha256"] = {c.name: per[c.name].pop("frames_sha256") for c in comps} if len(comps) > 1 else \
        per[comps[0].name].pop("frames_sha256")
    if len(comps) > 1:
        rec["compositions"] = per
    rec["wall_s"] = _times(rdir)
    write_atomic(rdir / "round.json", (json.dumps(rec, indent=1) + "\n").encode())
    return rec


def _train(cfg, outdir, rdir, k, tmap, sel, dirs, beat) -> list[Path]:
    """The round's students, frozen (each resumes from its deepmd-kit checkpoint); student 0 gets
    the closest-pairs sidecar of its data so its MD is guarded as a deployed student's is."""
    import os

    from tqdm import tqdm

    from nvnmd.distill.train import train_and_freeze, training_input

    n, steps = cfg.ensemble_size, cfg.explore_train_steps
    bar = tqdm(total=n * steps, unit="step", desc=f"explore {k}: train {n} students", dynamic_ncols=True,
               disable=not cfg.progress)
    models = []
    for m in range(n):
        work = rdir / f"train.{m}"
        work.mkdir(parents=True, exist_ok=True)
        rel = [os.path.relpath(d, work) for d in dirs]
        doc = training_input(cfg, tmap, sel, rel, os.path.relpath(outdir / "data" / "holdout", work),
                             train_seed(cfg, k, m), steps=steps)

        def poll(step, m=m):
            bar.n = m * steps + step
            bar.refresh()
            beat()

        models.append(train_and_freeze(work, doc, work / "train.log", on_poll=poll))
        bar.n = (m + 1) * steps
        bar.refresh()
    bar.close()
    D.write_pairs_sidecar(models[0], dirs, tmap, cfg.rcut)
    return models


def _explore_md(cfg, outdir, model, trajs, k, md_config, beat) -> None:
    from ase.io import read
    from tqdm import tqdm

    from nvnmd.backends.deepmd import DeepmdBackend
    from nvnmd.md.engine import MDConfig, run_md

    backend = DeepmdBackend(model)
    steps, every = cfg.explore_steps, cfg.explore_every
    bar = tqdm(total=len(trajs) * steps, unit="step", desc=f"explore {k}: student MD", dynamic_ncols=True,
               disable=not cfg.progress, mininterval=1.0)
    for n, (c, j, T, v, out) in enumerate(trajs):
        md = {**md_config(T, steps, max(1, steps // every), md_seed(c, k, j, T, v)), "traj_every": every,
              "thermo_every": every}
        ck = out / "checkpoint.npz"
        if (out / "FAILED").exists() or _finished(ck, steps):
            continue
        atoms = D.scaled_to_volume(read(str(c.dir(outdir, "perturb") / f"s{j}.extxyz")), v)

        def on_step(step, total, n=n):
            bar.n = n * steps + step
            bar.refresh()
            beat()

        try:
            run_md(atoms, backend, MDConfig(**md), out, resume=ck.exists(), progress=False, log=lambda *a: None,
                   on_step=on_step)
        except NvnmdError as exc:  # an untrained student may blow up: its frames so far are judged
            write_atomic(out / "FAILED", (str(exc) + "\n").encode())
    bar.n = len(trajs) * steps
    bar.close()


def _finished(ck: Path, steps: int) -> bool:
    if not ck.exists():
        return False
    with np.load(ck, allow_pickle=False) as z:
        return int(z["step"]) >= steps


def _deviations(cfg, models, trajs, tmap, beat) -> list[dict]:
    """Per trajectory: the visited frames after the start and their deviations (cached in devi.npz)."""
    from ase.io import read

    from nvnmd.quiet import quiet_native

    loaded = []
    out = []
    for c, j, T, v, run in trajs:
        cache = run / "devi.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                out.append({k: z[k] for k in z.files})
            continue
        if not loaded:
            with quiet_native():
                from deepmd.infer import DeepPot

                loaded = [DeepPot(str(m)) for m in models]
        frames = read(str(run / "traj.extxyz"), index=":", format="extxyz")[1:]  # the start is data already
        coords = np.array([f.positions for f in frames]).reshape(-1, len(c.symbols), 3)
        cells = np.array([f.cell.array for f in frames]).reshape(-1, 3, 3)
        steps = np.array([int(f.info["step"]) for f in frames], dtype=np.int64)
        types = np.array([tmap.index(s) for s in c.symbols])
        if len(frames):
            e, f, v = ensemble_predictions(loaded, coords, cells, types)
            table = deviation_table(steps, e, f, v, len(c.symbols))
        else:
            table = np.zeros((0, len(DEVI_COLUMNS)))
        d = {"steps": steps, "coords": coords, "cells": cells, "max_devi_f": table[:, 4], "table": table}
        buf = io.BytesIO()
        np.savez(buf, **d)
        write_atomic(cache, buf.getvalue())
        text = io.StringIO()
        np.savetxt(text, table, fmt=["%12d"] + ["%19.6e"] * (table.shape[1] - 1), delimiter="",
                   header=f"{'step':10s}" + "".join(f"{name:19s}" for name in DEVI_COLUMNS[1:]))
        write_atomic(run / "model_devi.out", text.getvalue().encode())
        out.append(d)
        beat()
    return out


def _select(cfg, comp, k: int, devi: list[dict], rdir: Path) -> tuple[dict, dict]:
    """Counts of a composition's explored frames by class, and its picked candidates (cached:
    the pick is a seeded draw, the same on every rerun)."""
    sigma = np.concatenate([d["max_devi_f"] for d in devi]) if devi else np.zeros(0)
    coords = np.concatenate([d["coords"] for d in devi]) if devi else np.zeros((0, len(comp.symbols), 3))
    cells = np.concatenate([d["cells"] for d in devi]) if devi else np.zeros((0, 3, 3))
    accurate = sigma < cfg.trust_lo
    failed = sigma >= cfg.trust_hi
    cand = np.flatnonzero(~accurate & ~failed)
    path = rdir / ("candidates.npz" if not comp.name else f"candidates_{comp.name}.npz")
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            pick = z["index"]
    else:
        rng = np.random.default_rng([cfg.seed, comp.index, k])
        pick = np.sort(rng.choice(cand, size=min(cfg.max_candidates, len(cand)), replace=False)) if len(cand) else \
            np.zeros(0, dtype=np.int64)
        D.save_frames(path, coords[pick], cells[pick], comp.symbols, index=pick, sigma=sigma[pick])
    counts = {"explored": int(len(sigma)), "accurate": int(accurate.sum()), "candidates": int(len(cand)),
              "failed": int(failed.sum()), "accurate_fraction": float(accurate.mean()) if len(sigma) else 0.0,
              "selected": int(len(pick)), "frames_sha256": [D.frame_sha256(coords[i], cells[i])[:16] for i in pick]}
    return counts, {"coords": coords[pick], "cells": cells[pick]}


def _label(cfg, outdir, comps, tmap, k, picked, rdir, beat) -> dict:
    """Teacher labels of the picked frames (the label stage's pool and chunks), its |F| filter,
    one deepmd system per composition under data/iter.KKK."""
    from nvnmd.distill.workers import label_chunks

    chunks = []
    for c in comps:
        p = picked[c.name]
        for start in range(0, len(p["coords"]), cfg.label_chunk):
            sl = slice(start, start + cfg.label_chunk)
            chunks.append((c.dir(rdir, "label") / f"cand_{start:06d}.npz", p["coords"][sl], p["cells"][sl], c.symbols))
    label_chunks(cfg.teacher, chunks, cfg.workers, progress=cfg.progress, heartbeat=beat, desc=f"explore {k}: teacher labels")
    out = {}
    multi = len(comps) > 1
    for c in comps:
        p = picked[c.name]
        mine = [ch for ch in chunks if ch[0].parent == c.dir(rdir, "label")]
        if not len(p["coords"]):
            out[c.name] = {"labelled": 0, "dropped_max_force": 0}
            continue
        parts = [np.load(ch[0]) for ch in mine]
        e = np.concatenate([q["energies"] for q in parts])
        f = np.concatenate([q["forces"] for q in parts])
        v = np.concatenate([q["virials"] for q in parts])
        keep = D.within_max_force(f, cfg.max_force)
        if keep.any():
            D.write_deepmd(c.dir(outdir, "data", f"iter.{k:03d}"), p["coords"][keep], p["cells"][keep], c.symbols,
                           e[keep], f[keep], v[keep], type_map=tmap if multi else None)
        out[c.name] = {"labelled": int(keep.sum()), "dropped_max_force": int((~keep).sum())}
    return out


def report_lines(info: dict, wall_s: float | None = None) -> list[str]:
    """The exploration section of validate/report.txt."""
    rounds = info.get("rounds", [])
    lines = ["", f"exploration: {len(rounds)} round(s), stopped: {info.get('stopped')}; {info.get('labelled', 0)} "
                 f"frames added" + (f"; {wall_s:.0f} s" if wall_s is not None else ""),
             f"{'round':>5} {'explored':>9} {'accurate %':>11} {'candidates':>11} {'failed':>7} {'selected':>9} "
             f"{'labelled':>9}  wall s (train/md/deviation/label)"]
    for r in rounds:
        w = r.get("wall_s", {})
        lines.append(f"{r['round']:>5} {r['explored']:>9} {100 * r['accurate_fraction']:>11.1f} {r['candidates']:>11} "
                     f"{r['failed']:>7} {r['selected']:>9} {r['labelled']:>9}  "
                     + "/".join(f"{w[s]:.0f}" if s in w else "-" for s in ("train", "md", "deviation", "label")))
    return lines
