"""Every parameter of `nvnmd distill`, with the seed scheme's values as defaults.

One dataclass, so the manifest records exactly what a run used and a resumed run can refuse
parameters that differ from the ones its finished stages were made with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

# parameters that change how fast a run goes, not what it produces: a resume may change them
NON_SEMANTIC = ("workers", "progress")

# parameters added after manifests were first written, with the default that means "as before":
# left out of the recorded parameters while at that default, so older manifests still resume
ADDED_LATER = {"structures": (), "volume_scales": (1.0,), "type_one_side": True, "refine": ()}

# the exploration's parameters: they mean nothing while ensemble_size is 0 (off), so they are left
# out of the recorded parameters then (a run without the ensemble records what it did before)
EXPLORE = ("explore_rounds", "explore_train_steps", "explore_steps", "explore_every", "explore_temperatures",
           "trust_lo", "trust_hi", "max_candidates", "accurate_fraction")

# the first stage whose output each parameter changes (pipeline.STAGES order); a resume may change a
# parameter while neither that stage nor a later one has started (Manifest.bind), since nothing made
# so far depends on it. Unlisted parameters belong to the first stage.
FIRST_STAGE = {
    "structures": "perturb",
    **dict.fromkeys(("temperatures", "volume_scales", "md_steps", "dt_fs", "ensemble", "tau_fs", "holdout_steps",
                     "holdout_frames", "frames_per_trajectory"), "teacher_md"),
    **dict.fromkeys(("frame_cell_pert_fraction", "frame_atom_pert_distance"), "sample"),
    **dict.fromkeys(("label_chunk", "max_force"), "label"),
    # the explore stage's students use the student's shape and learning rate: those start there too
    **dict.fromkeys(("ensemble_size", *EXPLORE), "explore"),
    **dict.fromkeys(("rcut", "rcut_smth", "embedding", "axis_neuron", "type_one_side", "fitting", "sel_margin", "start_lr",
                     "stop_lr", "batch_size"), "explore"),
    "train_steps": "train",
    "refine": "train",
    "calib_frames": "quantize",
    **dict.fromkeys(("robust_dT", "robust_ps", "robust_dt_fs", "max_force_rmse", "max_energy_rmse", "max_drift",
                     "min_pair_fraction", "reference_data", "reference_every", "baseline"), "validate"),
}


@dataclass
class DistillConfig:
    teacher: str = "dpa4-neo-omat24"
    structure: str = ""  # one structure (the single-composition run)
    # several compositions: "NAME=PATH" entries (then `structure` is empty); each is perturbed, run,
    # sampled and labelled as its own deepmd system, and one student is trained on them all
    structures: tuple = ()
    supercell: tuple = (1, 1, 1)
    temperatures: tuple = (900.0,)
    # teacher MD also in cells scaled isotropically to these volume ratios (DP-GEN explores
    # densities through NPT at several pressures; without a barostat the density is set here)
    volume_scales: tuple = (1.0,)
    seed: int = 20261202
    # 1. perturbed starting structures (dpdata System.perturb: cell strain fraction, atom shift in Å)
    md_structures: int = 5
    cell_pert_fraction: float = 0.03
    atom_pert_distance: float = 0.1
    # 2. teacher MD from each structure at each temperature: NVT (the engine has no barostat yet)
    md_steps: int = 2000
    dt_fs: float = 1.0
    ensemble: str = "csvr"
    tau_fs: float = 100.0
    # held-out teacher trajectory (another perturbed structure, another seed): validation only
    holdout_steps: int = 2000
    holdout_frames: int = 50
    # 3. frames sampled from each trajectory, each perturbed again
    frames_per_trajectory: int = 100
    frame_cell_pert_fraction: float = 0.03
    frame_atom_pert_distance: float = 0.1
    # 4. teacher labels
    workers: int = 2
    label_chunk: int = 10
    max_force: float = 10.0  # eV/Å: frames with any larger component norm are dropped
    # 5. student (deepmd-kit se_e2_a; the board limits are fpga/SPEC.md §1)
    rcut: float = 6.0
    rcut_smth: float = 1.0
    embedding: tuple = (8, 16, 32)
    axis_neuron: int = 8
    # one embedding net per neighbour type (True), or per (centre, neighbour) type pair: nt² board tables
    type_one_side: bool = True
    fitting: tuple = (128, 128, 128)
    sel_margin: float = 1.15  # sel = ceil(margin * most neighbours of a type seen), to a multiple of 4
    train_steps: int = 200000
    start_lr: float = 1e-3
    stop_lr: float = 1e-6
    batch_size: str = "auto:32"
    # phases after train_steps, each from the previous one's model: "restart:STEPS" (learning rate
    # restarted, energy weighted) and "finetune:STEPS" (per-atom energy loss), the shipped student's
    # later stages (nvnmd/distill/train.py REFINE_PHASES); () = train_steps only
    refine: tuple = ()
    # 6. quantization
    calib_frames: int = 100
    # 7. validation and its acceptance thresholds
    robust_dT: float = 100.0  # K above the highest temperature
    robust_ps: float = 50.0
    robust_dt_fs: float = 1.0
    max_force_rmse: float = 0.150  # eV/Å, student vs teacher on the held-out trajectory
    max_energy_rmse: float = 0.005  # eV/atom
    max_drift: float = 1.0e-3  # eV/atom/ps, conserved energy of the robustness run
    min_pair_fraction: float = 0.9  # closest pair in the robustness run >= this x the training data's
    reference_data: str = ""
    reference_every: int = 1  # use frames with index % every == every - 1 of each reference system
    baseline: str = ""  # another float model shown beside the student against the reference labels
    # 4b. DP-GEN-style exploration (the explore stage, between label and train; explore.py): an
    # ensemble of students trained with different seeds, MD with the first of them, and the frames
    # where they disagree labelled by the teacher, round after round. 0 = off; 2 to 4 students.
    ensemble_size: int = 0
    explore_rounds: int = 4  # at most this many rounds
    explore_train_steps: int = 20000  # dp --tf train steps of each ensemble student
    explore_steps: int = 2000  # MD steps per exploration trajectory (dt_fs, the thermostat of teacher_md)
    explore_every: int = 10  # a frame every this many steps is judged (DP-GEN's trj_freq)
    explore_temperatures: tuple = ()  # K; () = the temperatures and the robustness run's (recorded per round)
    # max force deviation (eV/Å) of a candidate: trust_lo <= sigma < trust_hi (DP-GEN's
    # model_devi_f_trust_lo/hi). DP-GEN's usual 0.05/0.15 suit DFT-level models of ~0.03-0.05 eV/Å
    # error; this student is bounded by the board (fpga/SPEC.md §1): the accepted LGPS one is 0.085
    # eV/Å per component off the teacher (whose forces have an RMS of 0.72 at 900 K). Measured: that
    # student and the shipped one, as an ensemble of two, on its 50 held-out teacher frames (in
    # distribution for both): max deviation 0.083 / 0.113 / 0.147 eV/Å at the 5th / 50th / 95th
    # percentile. So trust_lo 0.15: a frame the ensemble agrees on as well as two good board-sized
    # students agree on frames like their data (and >= 95 % of such frames below it: what
    # accurate_fraction asks); trust_hi 3x that, DP-GEN's ratio, above which frames are mostly far
    # from any data (unphysical).
    trust_lo: float = 0.15
    trust_hi: float = 0.45
    max_candidates: int = 50  # per composition and round (a seeded random subset; DP-GEN's fp_task_max)
    accurate_fraction: float = 0.95  # converged when every composition has this share below trust_lo
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def semantic(self) -> dict:
        return {k: v for k, v in self.as_dict().items() if k not in NON_SEMANTIC
                and not (k in ADDED_LATER and getattr(self, k) == ADDED_LATER[k])
                and not (k in EXPLORE and not self.ensemble_size)}

    @property
    def exploration_temperatures(self) -> tuple:
        return tuple(self.explore_temperatures) or tuple(dict.fromkeys((*self.temperatures, self.robust_temperature)))

    def compositions(self) -> list[tuple[str, str]]:
        """(name, path) of every structure; one nameless entry for a single-structure run, whose
        files keep the single-structure layout (perturb/s0.extxyz, data/train, ...)."""
        if not self.structures:
            return [("", self.structure)]
        return [tuple(entry.split("=", 1)) for entry in self.structures]

    def as_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        names = {f.name: f for f in fields(cls)}
        kw = {}
        for k, v in d.items():
            if k in names:
                kw[k] = tuple(v) if isinstance(getattr(cls(), k), tuple) else v
        return cls(**kw)

    @property
    def robust_temperature(self) -> float:
        return max(self.temperatures) + self.robust_dT
