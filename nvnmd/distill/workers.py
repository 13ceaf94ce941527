"""Teacher work in worker processes: MD trajectories and labelling, `workers` at a time.

A pool of spawned processes (never forked: TensorFlow and torch hold threads), each loading
the teacher once and running one intra-op thread, so two workers use both cores. The parent
only schedules, shows progress and writes results atomically, so a kill -9 loses at most the
chunks in flight; MD trajectories resume from their checkpoints (nvnmd.md.engine).
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np

_TEACHER = None


def _init(spec: str) -> None:
    global _TEACHER
    os.environ["OMP_NUM_THREADS"] = "1"
    import logging

    logging.basicConfig(level=logging.WARNING)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from nvnmd.backends.teacher import load_teacher

    _TEACHER = load_teacher(spec)


def pool(spec: str, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=max(1, int(workers)), mp_context=get_context("spawn"),
                               initializer=_init, initargs=(spec,))


def teacher_md(structure_path: str, outdir: str, config: dict, volume_scale: float = 1.0) -> dict:
    """One teacher trajectory with the project's MD engine; continues from its checkpoint. The
    starting structure is first scaled isotropically to `volume_scale` times its volume."""
    from ase.io import read

    from nvnmd.distill.data import scaled_to_volume
    from nvnmd.md.engine import MDConfig, run_md

    out = Path(outdir)
    ck = out / "checkpoint.npz"
    resume = ck.exists()
    if resume:
        with np.load(ck, allow_pickle=False) as z:
            if int(z["step"]) >= config["steps"]:
                return {"steps": int(z["step"]), "skipped": True}
    atoms = scaled_to_volume(read(structure_path), volume_scale)
    return run_md(atoms, _TEACHER, MDConfig(**config), out, resume=resume, progress=False)


def label(coords: np.ndarray, cells: np.ndarray, symbols: list[str]) -> dict:
    """Teacher energies, forces and virials of frames sharing one composition."""
    index = {s: i for i, s in enumerate(_TEACHER.type_map)}
    types = np.array([index[s] for s in symbols])
    e, f, v = [], [], []
    for c, b in zip(coords, cells):
        res = _TEACHER.compute(c, types, b, pbc=True)
        e.append(res.energy)
        f.append(res.forces)
        v.append(res.virial)
    return {"energies": np.array(e), "forces": np.array(f), "virials": np.array(v)}


def run_trajectories(spec: str, jobs: list[tuple], workers: int, progress=True, heartbeat=None) -> list:
    """Run MD jobs (structure, outdir, MDConfig kwargs[, volume scale]) in parallel with one
    progress bar of steps."""
    from tqdm import tqdm

    total = sum(job[2]["steps"] for job in jobs)
    bar = tqdm(total=total, unit="step", desc="teacher MD", dynamic_ncols=True, disable=not progress, mininterval=2.0)
    results = [None] * len(jobs)
    with pool(spec, workers) as ex:
        futures = {ex.submit(teacher_md, *job): k for k, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=10.0, return_when=FIRST_COMPLETED)
            for fut in done:
                results[futures[fut]] = fut.result()  # a worker's error ends the stage here, loudly
            bar.n = sum(min(_steps_done(Path(job[1]), job[2]), job[2]["steps"]) for job in jobs)
            bar.refresh()
            if heartbeat:
                heartbeat()
    bar.close()
    return results


def _steps_done(out: Path, cfg: dict) -> int:
    """Steps a running trajectory has reached, from the frames in its (buffered) traj.extxyz."""
    traj = out / "traj.extxyz"
    if not traj.exists():
        return 0
    frames = traj.read_bytes().count(b"Lattice=")
    return max(0, frames - 1) * int(cfg.get("traj_every", 10))


def label_chunks(spec: str, chunks: list[tuple[Path, np.ndarray, np.ndarray, list[str]]], workers: int,
                 progress=True, heartbeat=None, desc="teacher labels") -> None:
    """Label every chunk whose result file is missing; each result is written atomically."""
    import io

    from tqdm import tqdm

    from nvnmd.image import write_atomic

    todo = [c for c in chunks if not Path(c[0]).exists()]
    total = sum(len(c[1]) for c in chunks)
    bar = tqdm(total=total, initial=total - sum(len(c[1]) for c in todo), unit="frame", desc=desc,
               dynamic_ncols=True, disable=not progress)
    if todo:
        with pool(spec, min(workers, len(todo))) as ex:  # a worker costs a teacher load: none idle
            futures = {ex.submit(label, c[1], c[2], c[3]): c for c in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=10.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    path, coords = futures[fut][0], futures[fut][1]
                    buf = io.BytesIO()
                    np.savez(buf, **fut.result())
                    write_atomic(Path(path), buf.getvalue())
                    bar.update(len(coords))
                if heartbeat:
                    heartbeat()
    bar.close()
