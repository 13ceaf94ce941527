"""`distill(cfg, outdir)`: the stages in order, each resumable and idempotent.

    perturb     perturbed copies of the structure (+ one for the held-out trajectory)
    teacher_md  NVT teacher MD from each copy at each temperature, and the held-out run
    sample      frames from each trajectory, each perturbed again; the held-out frames as they are
    label       teacher energies/forces/virials (workers processes); |F| filter; deepmd/npy sets
    train       dp --tf train + freeze -> student.pb, student.pairs.json
    quantize    student.nvq + quantize/report.*
    validate    report.json / report.txt / parity.png: accepted or rejected, with reasons

A stage marked done in manifest.json (with its outputs present) is skipped; a stage killed
mid-way continues from what it wrote (MD checkpoints, labelled chunks, deepmd-kit checkpoints).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from nvnmd.distill import data as D
from nvnmd.distill.config import FIRST_STAGE
from nvnmd.distill.manifest import Manifest
from nvnmd.errors import NvnmdError
from nvnmd.image import write_atomic

log = logging.getLogger("nvnmd")
STAGES = ("perturb", "teacher_md", "sample", "label", "train", "quantize", "validate")


def _structure(cfg):
    from ase.io import read

    try:
        atoms = read(cfg.structure)
    except FileNotFoundError:
        raise
    except Exception as exc:  # ASE raises many types for unreadable files
        raise NvnmdError(f"cannot read structure {cfg.structure}: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    if not atoms.pbc.all():
        raise NvnmdError(f"{cfg.structure}: distillation needs a periodic cell")
    return atoms.repeat(tuple(int(r) for r in cfg.supercell))


def _md_config(cfg, temperature: float, steps: int, frames: int, seed: int) -> dict:
    every = max(1, steps // max(1, frames))
    return {"ensemble": cfg.ensemble, "temperature": float(temperature), "dt_fs": cfg.dt_fs, "steps": int(steps),
            "seed": int(seed), "tau_fs": cfg.tau_fs, "traj_every": every, "thermo_every": every,
            "checkpoint_every": max(every, min(500, steps))}


def _trajectories(cfg, outdir: Path) -> list[tuple[str, Path, dict]]:
    """(name, run dir, MDConfig kwargs) of every teacher run; the held-out one last."""
    runs = []
    for k in range(cfg.md_structures):
        for T in cfg.temperatures:
            runs.append((f"s{k}_T{int(round(T))}K", outdir / "teacher_md" / f"s{k}_T{int(round(T))}K",
                         _md_config(cfg, T, cfg.md_steps, cfg.frames_per_trajectory, cfg.seed + 1000 * k + int(T))))
    T = max(cfg.temperatures)
    runs.append(("holdout", outdir / "teacher_md" / "holdout",
                 _md_config(cfg, T, cfg.holdout_steps, cfg.holdout_frames, cfg.seed + 999_999)))
    return runs


def distill(cfg, outdir, log_fn=print) -> dict:
    from nvnmd.backends.teacher import file_sha256, load_teacher, check_elements, resolve_teacher

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if not Path(cfg.structure).is_file():
        raise FileNotFoundError(2, "No such file", cfg.structure)
    atoms = _structure(cfg)
    spec = resolve_teacher(cfg.teacher)
    man = Manifest(outdir)
    man.bind(cfg.semantic(), {
        "teacher": {"spec": spec.spec, "kind": spec.kind, "sha256": spec.sha256, "path": str(spec.path or "")},
        "structure": {"path": str(cfg.structure), "sha256": file_sha256(cfg.structure), "natoms": len(atoms),
                      "formula": atoms.get_chemical_formula()},
        "seeds": {"perturb": cfg.seed, "frames": cfg.seed + 1, "md": f"{cfg.seed} + 1000 k + T; holdout {cfg.seed} + 999999",
                  "train": cfg.seed % 2**31, "robustness": cfg.seed + 7},
        "scheme": {"md_ensemble": f"NVT ({cfg.ensemble}): nvnmd's MD engine has no barostat, so the seed "
                                  f"scheme's NPT at ambient pressure is run at the structure's volume"},
    }, first_stage=FIRST_STAGE, stages=STAGES)
    if not all(man.done(s) for s in ("teacher_md", "label")) or cfg.reference_data and not man.done("validate"):
        check_elements(load_teacher(spec), atoms.get_chemical_symbols())  # also: a corrupt model fails here
    symbols = atoms.get_chemical_symbols()
    runs = _trajectories(cfg, outdir)

    def stage(name, fn):
        if man.done(name):
            log_fn(f"[{name}] done before ({man.stage(name)['wall_s']:.0f} s), kept")
            return
        log_fn(f"[{name}] ...")
        man.start(name)
        outputs, info = fn(lambda: man.heartbeat(name))
        wall = man.finish(name, outputs, info)
        log_fn(f"[{name}] finished in {wall:.0f} s")

    def perturb(beat):
        n = cfg.md_structures + 1
        coords, cells = D.perturb(atoms.positions[None], atoms.cell.array[None], symbols, n,
                                  cfg.cell_pert_fraction, cfg.atom_pert_distance, cfg.seed)
        from ase import Atoms
        from ase.io import write

        outs = []
        for k in range(n):
            name = f"s{k}" if k < cfg.md_structures else "holdout"
            path = outdir / "perturb" / f"{name}.extxyz"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            write(str(tmp), Atoms(symbols, positions=coords[k], cell=cells[k], pbc=True), format="extxyz")
            tmp.replace(path)
            outs.append(path)
        return outs, {"structures": n}

    def teacher_md(beat):
        from nvnmd.distill.workers import run_trajectories

        jobs = []
        for name, run_dir, md in runs:
            start = outdir / "perturb" / (f"{name.split('_')[0]}.extxyz" if name != "holdout" else "holdout.extxyz")
            jobs.append((str(start), str(run_dir), md))
        results = run_trajectories(cfg.teacher, jobs, cfg.workers, progress=cfg.progress, heartbeat=beat)
        info = {name: {k: r.get(k) for k in ("steps", "seconds", "cpu_seconds") if k in r} for (name, _, _), r in zip(runs, results)}
        return [run_dir / "traj.extxyz" for _, run_dir, _ in runs], info

    def sample(beat):
        from ase.io import read

        all_c, all_b = [], []
        for k, (name, run_dir, md) in enumerate(runs):
            frames = read(str(run_dir / "traj.extxyz"), index=":", format="extxyz")
            want = cfg.holdout_frames if name == "holdout" else cfg.frames_per_trajectory
            frames = frames[-want:]  # the starting frame is dropped
            c = np.array([f.positions for f in frames])
            b = np.array([f.cell.array for f in frames])
            if name == "holdout":
                D.save_frames(outdir / "sample" / "holdout.npz", c, b, symbols)
                continue
            pc, pb = D.perturb(c, b, symbols, 1, cfg.frame_cell_pert_fraction, cfg.frame_atom_pert_distance,
                               cfg.seed + 1 + k)
            all_c.append(pc)
            all_b.append(pb)
        D.save_frames(outdir / "sample" / "frames.npz", np.concatenate(all_c), np.concatenate(all_b), symbols)
        return [outdir / "sample" / "frames.npz", outdir / "sample" / "holdout.npz"], {"frames": int(sum(len(c) for c in all_c))}

    def label(beat):
        from nvnmd.distill.workers import label_chunks

        sets = {name: D.load_frames_npz(outdir / "sample" / f"{name}.npz") for name in ("frames", "holdout")}
        chunks = []
        for name, fr in sets.items():
            for start in range(0, len(fr["coords"]), cfg.label_chunk):
                sl = slice(start, start + cfg.label_chunk)
                chunks.append((outdir / "label" / "chunks" / f"{name}_{start:06d}.npz", fr["coords"][sl], fr["cells"][sl], symbols))
        label_chunks(cfg.teacher, chunks, cfg.workers, progress=cfg.progress, heartbeat=beat)
        info, outs = {}, []
        for name, fr in sets.items():
            parts = [np.load(c[0]) for c in chunks if c[0].name.startswith(name + "_")]
            e = np.concatenate([p["energies"] for p in parts])
            f = np.concatenate([p["forces"] for p in parts])
            v = np.concatenate([p["virials"] for p in parts])
            keep = np.max(np.linalg.norm(f, axis=2), axis=1) <= cfg.max_force
            if name == "holdout":
                keep[:] = True  # validation keeps every frame of the trajectory
            if not keep.any():
                raise NvnmdError(f"every frame has a force above --max-force {cfg.max_force} eV/Å")
            target = outdir / "data" / ("train" if name == "frames" else "holdout")
            D.write_deepmd(target, fr["coords"][keep], fr["cells"][keep], symbols, e[keep], f[keep], v[keep])
            outs.append(target / "type.raw")
            info[name] = {"frames": int(len(keep)), "kept": int(keep.sum()), "dropped_max_force": int((~keep).sum()),
                          "max_force_eV_A": float(np.max(np.linalg.norm(f, axis=2)))}
        return outs, info

    def train(beat):
        from nvnmd.distill.train import train_and_freeze, training_input
        from nvnmd.quantize.build import check_limits
        from nvnmd.student import load_student
        from tqdm import tqdm

        tr = D.deepmd_systems(outdir / "data" / "train")
        sel = D.choose_sel(tr[0][0], tr[0][1], tr[0][2], cfg.rcut, cfg.sel_margin)
        tmap = D.type_map_of(symbols)
        doc = training_input(cfg, tmap, sel, "../data/train", "../data/holdout", cfg.seed % 2**31)
        bar = tqdm(total=cfg.train_steps, unit="step", desc="dp --tf train", dynamic_ncols=True, disable=not cfg.progress)

        def poll(step):
            bar.n = step
            bar.refresh()
            beat()

        model = train_and_freeze(outdir / "train", doc, outdir / "train" / "train.log", on_poll=poll)
        bar.close()
        student_pb = outdir / "student.pb"
        shutil.copyfile(model, student_pb.with_name(".student.pb.tmp"))
        student_pb.with_name(".student.pb.tmp").replace(student_pb)
        sidecar = D.write_pairs_sidecar(student_pb, outdir / "data" / "train", tmap, cfg.rcut)
        check_limits(load_student(student_pb))
        return [student_pb, sidecar, outdir / "train" / "input.json", outdir / "train" / "lcurve.out"], {"sel": sel, "type_map": tmap}

    def quantize(beat):
        from nvnmd.backends.sim import SimBackend
        from nvnmd.image import Image
        from nvnmd.quantize.build import quantize as q
        from nvnmd.quantize.data import load_frames
        from nvnmd.quantize.evaluate import compare, run_deeppot, run_image
        from nvnmd.quantize.report import write_report
        from nvnmd.student import load_student

        student = load_student(outdir / "student.pb")
        frames = load_frames(outdir / "data" / "train", student.type_map)
        pick = np.linspace(0, len(frames) - 1, min(cfg.calib_frames, len(frames))).round().astype(int)
        frames = [frames[i] for i in sorted(set(pick.tolist()))]
        model, info = q(student, frames)
        model.meta_extra.update({"source": "student.pb", "calibration": {"frames": len(frames), "data": "data/train"}})
        image = model.to_image()
        image.write(outdir / "student.nvq")
        pred, stats = run_image(SimBackend(Image.from_bytes(image.to_bytes())), frames)
        float_pred = run_deeppot(outdir / "student.pb", frames, student.type_map)
        results = [compare(pred, float_pred, frames, "float student"), compare(pred, "labels", frames, "teacher labels"),
                   compare(float_pred, "labels", frames, "student vs teacher")]
        info.update(source="student.pb", calib="data/train")
        rep = write_report(outdir / "quantize", image=image, info=info, results=results, pred=pred,
                           float_pred=float_pred, frames=frames, stats=stats)
        return [outdir / "student.nvq", rep / "report.json"], {"saturations": stats["saturations"]}

    def validate(beat):
        from nvnmd.distill.validate import decide, errors, parity_png, robustness
        from nvnmd.backends.sim import SimBackend
        from nvnmd.quantize.data import load_frames
        from nvnmd.quantize.evaluate import format_table, run_deeppot, run_image
        from nvnmd.student import load_student

        vdir = outdir / "validate"
        vdir.mkdir(exist_ok=True)
        student = load_student(outdir / "student.pb")
        tmap = student.type_map
        sim = SimBackend(outdir / "student.nvq")
        hold = load_frames(outdir / "data" / "holdout", tmap)
        f_pred = run_deeppot(outdir / "student.pb", hold, tmap)
        q_pred = run_image(sim, hold)[0]
        table = [errors(f_pred, hold, "student vs teacher"), errors(q_pred, hold, "quantized vs teacher")]
        parity_png(vdir / "parity_holdout.png", hold, {"float student vs teacher": f_pred, "quantized vs teacher": q_pred})
        report = {"holdout": {"frames": len(hold), "float": table[0], "quantized": table[1]}}
        ref_table = []
        if cfg.reference_data:
            ref = _reference_frames(cfg, tmap)
            t_pred = _teacher_on(cfg, ref, tmap, vdir / "reference_teacher", beat)
            rows = {"teacher": errors(t_pred, ref, "teacher vs DFT"),
                    "student": errors(run_deeppot(outdir / "student.pb", ref, tmap), ref, "student vs DFT"),
                    "quantized": errors(run_image(sim, ref)[0], ref, "quantized vs DFT")}
            if cfg.baseline:
                rows["baseline"] = errors(run_deeppot(cfg.baseline, ref, tmap), ref, "baseline vs DFT")
            report["reference"] = {"data": cfg.reference_data, "every": cfg.reference_every, "frames": len(ref), **rows}
            ref_table = list(rows.values())
        try:
            robust = robustness(outdir / "student.nvq", atoms, cfg, vdir / "robustness", progress=cfg.progress)
        except NvnmdError as exc:
            robust = {"error": str(exc)}
        report["robustness"] = robust
        pairs = json.loads((outdir / "student.pairs.json").read_text())["pairs"]
        reasons = decide(cfg, table[0], robust, pairs)
        report["training_closest_pairs"] = pairs
        report["status"] = "rejected" if reasons else "accepted"
        report["reasons"] = reasons
        write_atomic(vdir / "report.json", (json.dumps(report, indent=1) + "\n").encode())
        text = [f"nvnmd distill: student {report['status'].upper()}" + (": " + "; ".join(reasons) if reasons else ""),
                "", f"held-out teacher trajectory ({len(hold)} frames):", format_table(table)]
        if ref_table:
            text += ["", f"reference labels {cfg.reference_data} ({len(ref)} frames):", format_table(ref_table)]
        if "error" not in robust:
            text += ["", f"robustness: quantized student, {robust['simulated_ps']:.1f} ps {robust['ensemble']} at "
                         f"{robust['temperature_K']:.0f} K (mean {robust['mean_T_K']:.0f} K), conserved-energy drift "
                         f"{1e3 * robust['conserved_drift_eV_atom_ps']:.4f} meV/atom/ps",
                     "closest pairs (robustness MD / training data, Å): " + ", ".join(
                         f"{k} {v:.2f}/{pairs[k]:.2f}" for k, v in robust["closest_pairs"].items())]
        write_atomic(vdir / "report.txt", ("\n".join(text) + "\n").encode())
        return [vdir / "report.json", vdir / "report.txt", vdir / "parity_holdout.png"], {"status": report["status"]}

    t0 = time.time()
    for name, fn in (("perturb", perturb), ("teacher_md", teacher_md), ("sample", sample), ("label", label),
                     ("train", train), ("quantize", quantize), ("validate", validate)):
        stage(name, fn)
    report = json.loads((outdir / "validate" / "report.json").read_text())
    log_fn((outdir / "validate" / "report.txt").read_text().rstrip())
    log_fn(f"wall times (s): " + ", ".join(f"{s} {man.stage(s)['wall_s']:.0f}" for s in STAGES) +
           f"; this invocation {time.time() - t0:.0f} s")
    return report


def _reference_frames(cfg, type_map):
    from nvnmd.quantize.data import load_frames

    frames = load_frames(cfg.reference_data, type_map)
    every = max(1, int(cfg.reference_every))
    out, seen = [], {}
    for fr in frames:  # load_frames keeps each system's frames in order
        k = seen.get(fr.system, 0)
        seen[fr.system] = k + 1
        if k % every == every - 1:
            out.append(fr)
    if not out:
        raise NvnmdError(f"--reference-data {cfg.reference_data}: no frames left with --reference-every {every}")
    return out


def _teacher_on(cfg, frames, type_map, cache: Path, beat) -> list:
    """Teacher predictions on labelled frames, labelled in chunks of one system each (cached)."""
    from nvnmd.distill.workers import label_chunks

    groups = {}
    for k, fr in enumerate(frames):
        groups.setdefault(fr.system, []).append(k)
    chunks = []
    for g, (system, idx) in enumerate(groups.items()):
        symbols = [type_map[t] for t in frames[idx[0]].types]
        for start in range(0, len(idx), cfg.label_chunk):
            sub = idx[start:start + cfg.label_chunk]
            chunks.append((cache / f"g{g:03d}_{start:06d}.npz", np.array([frames[i].coord for i in sub]),
                           np.array([frames[i].cell for i in sub]), symbols, sub))
    label_chunks(cfg.teacher, [c[:4] for c in chunks], cfg.workers, progress=cfg.progress, heartbeat=beat,
                 desc="teacher on reference")
    pred = [None] * len(frames)
    for path, _, _, _, sub in chunks:
        with np.load(path) as z:
            for j, i in enumerate(sub):
                pred[i] = (float(z["energies"][j]), z["forces"][j], z["virials"][j].reshape(9))
    return pred
