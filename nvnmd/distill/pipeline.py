"""`distill(cfg, outdir)`: the stages in order, each resumable and idempotent.

    perturb     perturbed copies of the structure (+ one for the held-out trajectory)
    teacher_md  NVT teacher MD from each copy at each temperature, and the held-out run
    sample      frames from each trajectory, each perturbed again; the held-out frames as they are
    label       teacher energies/forces/virials (workers processes); |F| filter; deepmd/npy sets
    explore     only with --ensemble-size 2..4 (DP-GEN-style, explore.py): rounds of an ensemble of
                students, MD with the first, the frames where they disagree (trust_lo <= max force
                deviation < trust_hi) labelled by the teacher -> data/iter.KKK, until converged
    train       dp --tf train + freeze -> student.pb, student.pairs.json (on data/train and every
                data/iter.KKK); with --refine, phases that continue from its model (train/refineK_*)
    quantize    student.nvq + quantize/report.*
    validate    report.json / report.txt / parity.png: accepted or rejected, with reasons

Several compositions (`--structure` repeated): every stage does each composition in its own
folder (perturb/NAME/, teacher_md/NAME/, ..., data/train/NAME: one deepmd system each, all in the
union's type map); MD and labelling of all of them share one worker pool; one student is trained
on all systems; quantize calibrates on frames of each; validate reports each (validate/NAME/).

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
STAGES = ("perturb", "teacher_md", "sample", "label", "explore", "train", "quantize", "validate")


def active_stages(cfg) -> tuple:
    """The stages a run goes through: explore only with an ensemble (a run without one never
    records it, so its manifest is what it was before the stage existed)."""
    return tuple(s for s in STAGES if s != "explore" or cfg.ensemble_size)


def _structure(cfg, path=None):
    from ase.io import read

    path = path or cfg.structure
    try:
        atoms = read(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # ASE raises many types for unreadable files
        raise NvnmdError(f"cannot read structure {path}: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    if not atoms.pbc.all():
        raise NvnmdError(f"{path}: distillation needs a periodic cell")
    return atoms.repeat(tuple(int(r) for r in cfg.supercell))


class Composition:
    """One structure of the run and where its files go: a nameless one (the single-structure run)
    writes perturb/s0.extxyz, teacher_md/s0_T900K, sample/frames.npz, data/train, ...; a named one
    writes the same under NAME/ (perturb/NAME/s0.extxyz, data/train/NAME, ...). Its seeds are the
    single-structure ones offset by `index`, so every composition draws its own."""

    SEED_STRIDE = 10_000_000

    def __init__(self, cfg, index: int, name: str, path: str):
        self.index, self.name, self.path = index, name, path
        self.atoms = _structure(cfg, path)
        self.symbols = self.atoms.get_chemical_symbols()
        self.seed = cfg.seed + self.SEED_STRIDE * index

    def dir(self, outdir: Path, *parts) -> Path:
        return Path(outdir, *parts, self.name) if self.name else Path(outdir, *parts)


def _md_config(cfg, temperature: float, steps: int, frames: int, seed: int) -> dict:
    every = max(1, steps // max(1, frames))
    return {"ensemble": cfg.ensemble, "temperature": float(temperature), "dt_fs": cfg.dt_fs, "steps": int(steps),
            "seed": int(seed), "tau_fs": cfg.tau_fs, "traj_every": every, "thermo_every": every,
            "checkpoint_every": max(every, min(500, steps))}


def _trajectories(cfg, outdir: Path, comp: Composition) -> list[tuple[str, Path, dict, Path, float]]:
    """(name, run dir, MDConfig kwargs, starting structure, volume scale) of every teacher run of a
    composition; the held-out one (at the structure's own volume) last."""
    md_dir, start_dir = comp.dir(outdir, "teacher_md"), comp.dir(outdir, "perturb")
    runs = []
    for k in range(cfg.md_structures):
        for T in cfg.temperatures:
            for v in cfg.volume_scales:  # scale 1 keeps the seeds of runs made before scales existed
                tag = D.run_name(k, T, v)
                seed = comp.seed + 1000 * k + int(T) + (0 if v == 1.0 else 100_000 * int(round(1000 * v)))
                runs.append((tag, md_dir / tag, _md_config(cfg, T, cfg.md_steps, cfg.frames_per_trajectory, seed),
                             start_dir / f"s{k}.extxyz", float(v)))
    T = max(cfg.temperatures)
    runs.append(("holdout", md_dir / "holdout",
                 _md_config(cfg, T, cfg.holdout_steps, cfg.holdout_frames, comp.seed + 999_999),
                 start_dir / "holdout.extxyz", 1.0))
    return runs


def distill(cfg, outdir, log_fn=print) -> dict:
    from nvnmd.backends.teacher import file_sha256, load_teacher, check_elements, resolve_teacher

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for _, path in cfg.compositions():
        if not Path(path).is_file():
            raise FileNotFoundError(2, "No such file", path)
    comps = [Composition(cfg, k, name, path) for k, (name, path) in enumerate(cfg.compositions())]
    multi = bool(cfg.structures)
    # one type map for every system: a single structure keeps its own order (LGPS: Li Ge P S, the
    # shipped student's), several take the union in periodic order
    tmap = D.union_type_map([c.symbols for c in comps]) if multi else D.type_map_of(comps[0].symbols)
    spec = resolve_teacher(cfg.teacher)
    man = Manifest(outdir)

    def described(c):
        return {"path": str(c.path), "sha256": file_sha256(c.path), "natoms": len(c.atoms),
                "formula": c.atoms.get_chemical_formula()}

    seeds = {"perturb": cfg.seed, "frames": cfg.seed + 1, "md": f"{cfg.seed} + 1000 k + T; holdout {cfg.seed} + 999999",
             "train": cfg.seed % 2**31, "robustness": cfg.seed + 7}
    if multi:
        seeds["compositions"] = f"each seed above + {Composition.SEED_STRIDE} x the composition's index"
    if cfg.ensemble_size:
        from nvnmd.distill.explore import SEEDS

        seeds.update(SEEDS)
    extra = {"teacher": {"spec": spec.spec, "kind": spec.kind, "sha256": spec.sha256, "path": str(spec.path or "")},
             **({"structures": [{"name": c.name, **described(c)} for c in comps], "type_map": tmap} if multi
                else {"structure": described(comps[0])}),
             "seeds": seeds,
             "scheme": {"md_ensemble": f"NVT ({cfg.ensemble}): nvnmd's MD engine has no barostat, so the seed "
                                       f"scheme's NPT at ambient pressure is run at the structure's volume"
                                       + ("" if cfg.volume_scales == (1.0,) else
                                          f" and at {', '.join(f'{v:g}' for v in cfg.volume_scales if v != 1.0)} "
                                          f"times it")}}
    man.bind(cfg.semantic(), extra, first_stage=FIRST_STAGE, stages=STAGES)
    if not all(man.done(s) for s in ("teacher_md", "label")) or cfg.reference_data and not man.done("validate"):
        teacher = load_teacher(spec)  # also: a corrupt model fails here
        for c in comps:
            check_elements(teacher, c.symbols)
        del teacher
    runs = {c.name: _trajectories(cfg, outdir, c) for c in comps}

    def stage(name, fn, before=None):
        if man.done(name):
            log_fn(f"[{name}] done before ({man.stage(name)['wall_s']:.0f} s), kept")
            return
        if before:  # a refusal here leaves the stage unstarted, so a rerun may change its parameters
            before()
        log_fn(f"[{name}] ...")
        man.start(name)
        outputs, info = fn(lambda: man.heartbeat(name))
        wall = man.finish(name, outputs, info)
        log_fn(f"[{name}] finished in {wall:.0f} s")

    def perturb(beat):
        from ase import Atoms
        from ase.io import write

        n = cfg.md_structures + 1
        outs = []
        for c in comps:
            coords, cells = D.perturb(c.atoms.positions[None], c.atoms.cell.array[None], c.symbols, n,
                                      cfg.cell_pert_fraction, cfg.atom_pert_distance, c.seed)
            for k in range(n):
                name = f"s{k}" if k < cfg.md_structures else "holdout"
                path = c.dir(outdir, "perturb") / f"{name}.extxyz"
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                write(str(tmp), Atoms(c.symbols, positions=coords[k], cell=cells[k], pbc=True), format="extxyz")
                tmp.replace(path)
                outs.append(path)
        return outs, {"structures": n * len(comps)} if multi else {"structures": n}

    def teacher_md(beat):
        from nvnmd.distill.workers import run_trajectories

        all_runs = [(c, r) for c in comps for r in runs[c.name]]  # one pool for every composition
        jobs = [(str(start), str(run_dir), md, v) for _, (_, run_dir, md, start, v) in all_runs]
        results = run_trajectories(cfg.teacher, jobs, cfg.workers, progress=cfg.progress, heartbeat=beat)
        info = {}
        for (c, (name, *_)), r in zip(all_runs, results):
            key = f"{c.name}/{name}" if multi else name
            info[key] = {k: r.get(k) for k in ("steps", "seconds", "cpu_seconds") if k in r}
        return [run_dir / "traj.extxyz" for _, (_, run_dir, *_) in all_runs], info

    def sample(beat):
        from ase.io import read

        outs, counts = [], {}
        for c in comps:
            all_c, all_b = [], []
            sdir = c.dir(outdir, "sample")
            for k, (name, run_dir, md, *_) in enumerate(runs[c.name]):
                frames = read(str(run_dir / "traj.extxyz"), index=":", format="extxyz")
                want = cfg.holdout_frames if name == "holdout" else cfg.frames_per_trajectory
                frames = frames[-want:]  # the starting frame is dropped
                co = np.array([f.positions for f in frames])
                b = np.array([f.cell.array for f in frames])
                if name == "holdout":
                    D.save_frames(sdir / "holdout.npz", co, b, c.symbols)
                    continue
                pc, pb = D.perturb(co, b, c.symbols, 1, cfg.frame_cell_pert_fraction, cfg.frame_atom_pert_distance,
                                   c.seed + 1 + k)
                all_c.append(pc)
                all_b.append(pb)
            D.save_frames(sdir / "frames.npz", np.concatenate(all_c), np.concatenate(all_b), c.symbols)
            outs += [sdir / "frames.npz", sdir / "holdout.npz"]
            counts[c.name] = int(sum(len(x) for x in all_c))
        return outs, {"frames": sum(counts.values()), **({"per_composition": counts} if multi else {})}

    def label(beat):
        from nvnmd.distill.workers import label_chunks

        sets, chunks = {}, []
        for c in comps:
            for name in ("frames", "holdout"):
                fr = sets[c.name, name] = D.load_frames_npz(c.dir(outdir, "sample") / f"{name}.npz")
                for start in range(0, len(fr["coords"]), cfg.label_chunk):
                    sl = slice(start, start + cfg.label_chunk)
                    chunks.append((c.dir(outdir, "label", "chunks") / f"{name}_{start:06d}.npz", fr["coords"][sl],
                                   fr["cells"][sl], c.symbols))
        label_chunks(cfg.teacher, chunks, cfg.workers, progress=cfg.progress, heartbeat=beat)
        infos, outs = {}, []
        for c in comps:
            info = infos[c.name] = {}
            for name in ("frames", "holdout"):
                fr = sets[c.name, name]
                mine = c.dir(outdir, "label", "chunks")
                parts = [np.load(ch[0]) for ch in chunks if ch[0].parent == mine and ch[0].name.startswith(name + "_")]
                e = np.concatenate([p["energies"] for p in parts])
                f = np.concatenate([p["forces"] for p in parts])
                v = np.concatenate([p["virials"] for p in parts])
                keep = D.within_max_force(f, cfg.max_force)
                if name == "holdout":
                    keep[:] = True  # validation keeps every frame of the trajectory
                if not keep.any():
                    raise NvnmdError(f"every frame{' of ' + c.name if multi else ''} has a force above --max-force "
                                     f"{cfg.max_force} eV/Å")
                target = c.dir(outdir, "data", "train" if name == "frames" else "holdout")
                D.write_deepmd(target, fr["coords"][keep], fr["cells"][keep], c.symbols, e[keep], f[keep], v[keep],
                               type_map=tmap if multi else None)
                outs.append(target / "type.raw")
                info[name] = {"frames": int(len(keep)), "kept": int(keep.sum()), "dropped_max_force": int((~keep).sum()),
                              "max_force_eV_A": float(np.max(np.linalg.norm(f, axis=2)))}
        if not multi:
            return outs, infos[""]
        total = {name: {k: sum(i[name][k] for i in infos.values()) for k in ("frames", "kept", "dropped_max_force")}
                 for name in ("frames", "holdout")}
        return outs, {**total, "compositions": infos}

    chosen = {}

    def training_dirs() -> list[Path]:
        """data/train, and with an ensemble every data/iter.KKK its rounds labelled."""
        if not cfg.ensemble_size:
            return [outdir / "data" / "train"]
        from nvnmd.distill.explore import rounds_done, training_dirs as dirs_of

        return dirs_of(outdir, rounds_done(outdir))

    def sel_for(dirs) -> list[int]:
        """sel from training data of every composition; refused (NvnmdError) beyond the board."""
        key = tuple(str(d) for d in dirs)
        if key not in chosen:
            chosen[key] = D.choose_sel_systems(D.deepmd_systems(dirs), tmap, cfg.rcut, cfg.sel_margin)
        return chosen[key]

    def choose_sel():
        return sel_for(training_dirs())

    def explore(beat):
        from nvnmd.distill.explore import explore as run_rounds

        def on_round(records):  # each finished round in the manifest at once, not only at the end
            man.stage("explore")["info"] = {"rounds": records}
            man.save()

        return run_rounds(cfg, outdir, comps, tmap, sel_for,
                          lambda T, steps, frames, seed: _md_config(cfg, T, steps, frames, seed), beat,
                          on_round=on_round, log_fn=log_fn)

    def train(beat):
        from nvnmd.distill.train import total_steps, train_phases, training_input
        from nvnmd.quantize.build import check_limits
        from nvnmd.student import load_student
        from tqdm import tqdm

        sel = choose_sel()
        dirs = training_dirs()
        train_dirs = "../data/train" if len(dirs) == 1 else [f"../{d.relative_to(outdir)}" for d in dirs]
        doc = training_input(cfg, tmap, sel, train_dirs, "../data/holdout", cfg.seed % 2**31)
        bar = tqdm(total=total_steps(doc, cfg.refine), unit="step", desc="dp --tf train", dynamic_ncols=True,
                   disable=not cfg.progress)

        def poll(step):
            bar.n = step
            bar.refresh()
            beat()

        model, lcurves = train_phases(outdir / "train", doc, cfg.refine, cfg, on_poll=poll)
        bar.close()
        student_pb = outdir / "student.pb"
        shutil.copyfile(model, student_pb.with_name(".student.pb.tmp"))
        student_pb.with_name(".student.pb.tmp").replace(student_pb)
        sidecar = D.write_pairs_sidecar(student_pb, dirs[0] if len(dirs) == 1 else dirs, tmap, cfg.rcut)
        check_limits(load_student(student_pb))
        inputs = [lc.with_name("input.json") for lc in lcurves]
        return [student_pb, sidecar, *inputs, *lcurves], {"sel": sel, "type_map": tmap}

    def quantize(beat):
        from nvnmd.backends.sim import SimBackend
        from nvnmd.image import Image
        from nvnmd.quantize.build import quantize as q
        from nvnmd.quantize.data import load_frames
        from nvnmd.quantize.evaluate import compare, image_against_float, run_image
        from nvnmd.quantize.report import write_report
        from nvnmd.student import load_student

        student = load_student(outdir / "student.pb")
        frames, of = [], {}
        for c in comps:  # the same share of calibration frames from every composition
            mine = load_frames(c.dir(outdir, "data", "train"), student.type_map)
            want = cfg.calib_frames if not multi else -(-cfg.calib_frames // len(comps))
            pick = np.linspace(0, len(mine) - 1, min(want, len(mine))).round().astype(int)
            of[c.name] = [mine[i] for i in sorted(set(pick.tolist()))]
            frames += of[c.name]
        model, info = q(student, frames)
        model.meta_extra.update({"source": "student.pb", "calibration": {"frames": len(frames), "data": "data/train"}})
        image = model.to_image()
        sim = SimBackend(Image.from_bytes(image.to_bytes()))
        pred, stats, float_pred, vs_float = image_against_float(sim, outdir / "student.pb", frames, student.type_map)
        results = [vs_float, compare(pred, "labels", frames, "teacher labels"),
                   compare(float_pred, "labels", frames, "student vs teacher")]
        image.write(outdir / "student.nvq")
        info.update(source="student.pb", calib="data/train")
        rep = write_report(outdir / "quantize", image=image, info=info, results=results, pred=pred,
                           float_pred=float_pred, frames=frames, stats=stats)
        out_info = {"saturations": stats["saturations"]}
        if multi:  # the counts of each composition's calibration frames, from the same image
            out_info["compositions"] = {c.name: {"frames": len(of[c.name]),
                                                 "saturations": run_image(sim, of[c.name])[1]["saturations"]}
                                        for c in comps}
        return [outdir / "student.nvq", rep / "report.json"], out_info

    def validate(beat):
        from nvnmd.distill.validate import decide, errors, parity_png, robustness
        from nvnmd.backends.sim import SimBackend
        from nvnmd.quantize.data import load_frames
        from nvnmd.quantize.evaluate import format_table, run_deeppot, run_image
        from nvnmd.student import load_student

        vdir = outdir / "validate"
        vdir.mkdir(exist_ok=True)
        student = load_student(outdir / "student.pb")
        tmap_ = student.type_map
        sim = SimBackend(outdir / "student.nvq")
        pairs = json.loads((outdir / "student.pairs.json").read_text())["pairs"]
        qinfo = man.stage("quantize").get("info", {})
        per, outs, reasons, text_tables = {}, [], [], []
        for c in comps:
            cdir = c.dir(vdir)
            cdir.mkdir(parents=True, exist_ok=True)
            hold = load_frames(c.dir(outdir, "data", "holdout"), tmap_)
            f_pred = run_deeppot(outdir / "student.pb", hold, tmap_)
            q_pred = run_image(sim, hold)[0]
            table = [errors(f_pred, hold, "student vs teacher"), errors(q_pred, hold, "quantized vs teacher")]
            parity_png(cdir / "parity_holdout.png", hold, {"float student vs teacher": f_pred, "quantized vs teacher": q_pred})
            try:
                robust = robustness(outdir / "student.nvq", c.atoms, cfg, cdir / "robustness", progress=cfg.progress)
            except NvnmdError as exc:
                robust = {"error": str(exc)}
            why = decide(cfg, table[0], robust, pairs)
            reasons += [f"{c.name}: {r}" for r in why] if multi else why
            per[c.name] = {"formula": c.atoms.get_chemical_formula(), "frames": len(hold), "table": table,
                           "float": table[0], "quantized": table[1], "robustness": robust, "reasons": why}
            outs.append(cdir / "parity_holdout.png")
        sat = qinfo.get("saturations", 0)
        if sat:
            reasons.append(f"the quantized student saturates {sat} times on its own calibration frames")
        if multi:
            report = {"compositions": {name: {k: v for k, v in p.items() if k != "table"} for name, p in per.items()},
                      "type_map": tmap_, "calibration_saturations": qinfo.get("compositions", {})}
        else:
            p = per[""]
            report = {"holdout": {"frames": p["frames"], "float": p["float"], "quantized": p["quantized"]}}
        ref_table = []
        if cfg.reference_data:
            ref = reference_frames(cfg, tmap_)
            t_pred = teacher_predictions(cfg, ref, tmap_, vdir / "reference_teacher", beat)
            rows = {"teacher": errors(t_pred, ref, "teacher vs DFT"),
                    "student": errors(run_deeppot(outdir / "student.pb", ref, tmap_), ref, "student vs DFT"),
                    "quantized": errors(run_image(sim, ref)[0], ref, "quantized vs DFT")}
            if cfg.baseline:
                sub, sub_map = _retyped(ref, tmap_) if multi else (ref, tmap_)  # a baseline of fewer species
                rows["baseline"] = errors(run_deeppot(cfg.baseline, sub, sub_map), sub, "baseline vs DFT")
            report["reference"] = {"data": cfg.reference_data, "every": cfg.reference_every, "frames": len(ref), **rows}
            ref_table = list(rows.values())
        if not multi:
            report["robustness"] = per[""]["robustness"]
        if cfg.ensemble_size:
            ex = man.stage("explore")
            report["exploration"] = {**ex.get("info", {}), "wall_s": ex.get("wall_s")}
        report["training_closest_pairs"] = pairs
        report["status"] = "rejected" if reasons else "accepted"
        report["reasons"] = reasons
        write_atomic(vdir / "report.json", (json.dumps(report, indent=1) + "\n").encode())
        text = [f"nvnmd distill: student {report['status'].upper()}" + (": " + "; ".join(reasons) if reasons else "")]
        if multi:
            text += ["", f"{len(tmap_)} species ({' '.join(tmap_)}); calibration saturations: " + ", ".join(
                f"{k} {v['saturations']}" for k, v in qinfo.get("compositions", {}).items())]
        for c in comps:
            p = per[c.name]
            what = f"{c.name} ({p['formula']}): held-out" if multi else "held-out"
            text += ["", f"{what} teacher trajectory ({p['frames']} frames):", format_table(p["table"])]
            if multi:
                text += _robust_text(p["robustness"], pairs, c.symbols)
        if ref_table:
            text += ["", f"reference labels {cfg.reference_data} ({len(ref)} frames):", format_table(ref_table)]
        if not multi:
            text += _robust_text(per[""]["robustness"], pairs)
        if cfg.ensemble_size:
            from nvnmd.distill.explore import report_lines

            text += report_lines(report["exploration"], report["exploration"]["wall_s"])
            text += ["", "stage wall times (s): " + ", ".join(f"{s} {man.stage(s)['wall_s']:.0f}"
                                                              for s in active_stages(cfg) if s != "validate")]
        write_atomic(vdir / "report.txt", ("\n".join(text) + "\n").encode())
        return [vdir / "report.json", vdir / "report.txt", *outs], {"status": report["status"]}

    t0 = time.time()
    fns = {"perturb": perturb, "teacher_md": teacher_md, "sample": sample, "label": label, "explore": explore,
           "train": train, "quantize": quantize, "validate": validate}
    for name in active_stages(cfg):
        stage(name, fns[name], before=choose_sel if name == "train" else None)
    report = json.loads((outdir / "validate" / "report.json").read_text())
    log_fn((outdir / "validate" / "report.txt").read_text().rstrip())
    log_fn(f"wall times (s): " + ", ".join(f"{s} {man.stage(s)['wall_s']:.0f}" for s in active_stages(cfg)) +
           f"; this invocation {time.time() - t0:.0f} s")
    return report


def _robust_text(robust: dict, pairs: dict, symbols=None) -> list[str]:
    """The robustness lines of report.txt; with `symbols`, only the element pairs they hold."""
    if "error" in robust:
        return []
    seen = set(symbols or ())
    shown = {k: v for k, v in robust["closest_pairs"].items() if not seen or set(k.split("-")) <= seen}
    return ["", f"robustness: quantized student, {robust['simulated_ps']:.1f} ps {robust['ensemble']} at "
                f"{robust['temperature_K']:.0f} K (mean {robust['mean_T_K']:.0f} K), conserved-energy drift "
                f"{1e3 * robust['conserved_drift_eV_atom_ps']:.4f} meV/atom/ps",
            "closest pairs (robustness MD / training data, Å): " + ", ".join(
                f"{k} {v:.2f}/{pairs[k]:.2f}" for k, v in shown.items())]


def _retyped(frames, type_map):
    """The frames typed in the map of only the elements they hold (for a model of fewer species)."""
    from dataclasses import replace

    present = sorted({int(t) for fr in frames for t in fr.types})
    index = np.full(len(type_map), -1)
    index[present] = np.arange(len(present))
    return [replace(fr, types=index[fr.types]) for fr in frames], [type_map[t] for t in present]


def reference_frames(cfg, type_map):
    """Every `reference_every`-th frame of each system of `reference_data` (the validation split)."""
    from nvnmd.quantize.data import load_frames

    every = max(1, int(cfg.reference_every))
    _, out = split_every(load_frames(cfg.reference_data, type_map), every)
    if not out:
        raise NvnmdError(f"--reference-data {cfg.reference_data}: no frames left with --reference-every {every}")
    return out


def split_every(frames, every: int) -> tuple[list, list]:
    """(the rest, every `every`-th frame of each system: index % every == every - 1), each in order;
    `frames` keep each system's frames in order (as load_frames returns them)."""
    rest, chosen, seen = [], [], {}
    for fr in frames:
        k = seen.get(fr.system, 0)
        seen[fr.system] = k + 1
        (chosen if k % every == every - 1 else rest).append(fr)
    return rest, chosen


def teacher_predictions(cfg, frames, type_map, cache: Path, beat) -> list:
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
