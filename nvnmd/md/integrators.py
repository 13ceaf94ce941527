"""Integrators: NVE velocity Verlet, NVT Langevin (BAOAB, seeded), NVT Bussi CSVR (seeded) and
NVT Nosé–Hoover chains.

ASE units throughout (Å, eV, amu, time in Å·sqrt(amu/eV)). Each integrator is a small object
whose whole state is plain arrays/numbers (`state()`/`load_state()`), so checkpoints are
exact and a resumed run is bit-identical. `step(sys, compute)` advances `sys` (an `MDState`)
by one step; `compute(positions)` returns (energy, forces, virial). Every integrator keeps a
running `thermostat_energy` so the conserved quantity E_tot + thermostat_energy can be logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from ase import units


@dataclass
class MDState:
    positions: np.ndarray  # Å, unwrapped
    velocities: np.ndarray  # ASE velocity units
    masses: np.ndarray  # amu
    cell: np.ndarray
    forces: np.ndarray | None = None
    energy: float = 0.0
    virial: np.ndarray | None = None
    step: int = 0

    def kinetic_energy(self) -> float:
        return 0.5 * float(np.sum(self.masses[:, None] * self.velocities**2))


def _kick(sys: MDState, half_dt: float) -> None:
    sys.velocities = sys.velocities + (half_dt / sys.masses)[:, None] * sys.forces


def _drift(sys: MDState, dt: float) -> None:
    sys.positions = sys.positions + dt * sys.velocities


def _evaluate(sys: MDState, compute) -> None:
    sys.energy, sys.forces, sys.virial = compute(sys.positions)


def _verlet(sys: MDState, compute, dt: float) -> None:
    """One velocity-Verlet step (kick, drift, forces, kick); thermostats wrap it."""
    _kick(sys, 0.5 * dt)
    _drift(sys, dt)
    _evaluate(sys, compute)
    _kick(sys, 0.5 * dt)


class _SeededThermostat:
    """State of a stochastic thermostat: the heat it exchanged and its PCG64 stream, both
    saved exactly so a resumed run draws the same numbers."""

    def __init__(self, seed: int):
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.thermostat_energy = 0.0

    def state(self) -> dict:
        return {"thermostat_energy": self.thermostat_energy, "rng": json.dumps(self.rng.bit_generator.state)}

    def load_state(self, st: dict) -> None:
        self.thermostat_energy = float(st["thermostat_energy"])
        self.rng.bit_generator.state = json.loads(str(st["rng"]))


class VelocityVerlet:
    name = "nve"

    def __init__(self, dt_fs: float):
        self.dt = dt_fs * units.fs
        self.thermostat_energy = 0.0

    def step(self, sys: MDState, compute) -> None:
        _verlet(sys, compute, self.dt)
        sys.step += 1

    def state(self) -> dict:
        return {"thermostat_energy": self.thermostat_energy}

    def load_state(self, st: dict) -> None:
        self.thermostat_energy = float(st["thermostat_energy"])


class Langevin(_SeededThermostat):
    """BAOAB Langevin (Leimkuhler–Matthews); friction in 1/fs, numpy PCG64 stream from `seed`."""

    name = "langevin"

    def __init__(self, dt_fs: float, temperature: float, friction_per_fs: float = 0.01, seed: int = 0):
        self.dt = dt_fs * units.fs
        self.kT = units.kB * temperature
        self.c1 = np.exp(-friction_per_fs * dt_fs)
        super().__init__(seed)

    def step(self, sys: MDState, compute) -> None:
        _kick(sys, 0.5 * self.dt)
        _drift(sys, 0.5 * self.dt)
        ke_before = sys.kinetic_energy()
        noise = self.rng.standard_normal(sys.velocities.shape)
        sigma = np.sqrt((1.0 - self.c1**2) * self.kT / sys.masses)[:, None]
        sys.velocities = self.c1 * sys.velocities + sigma * noise
        self.thermostat_energy -= sys.kinetic_energy() - ke_before
        _drift(sys, 0.5 * self.dt)
        _evaluate(sys, compute)
        _kick(sys, 0.5 * self.dt)
        sys.step += 1

class CSVR(_SeededThermostat):
    """Bussi–Donadio–Parrinello canonical sampling through velocity rescaling (J. Chem. Phys.
    126, 014101 (2007)): velocity Verlet with a stochastic rescaling of the kinetic energy for
    half a step at either end. Unlike Langevin it leaves the single-particle dynamics (and so
    diffusion) almost untouched, with time constant `tau_fs`; numpy PCG64 stream from `seed`."""

    name = "csvr"

    def __init__(self, dt_fs: float, temperature: float, ndof: int, tau_fs: float = 100.0, seed: int = 0):
        self.dt = dt_fs * units.fs
        self.kT = units.kB * temperature
        self.ndof = ndof
        self.c = np.exp(-0.5 * dt_fs / tau_fs)  # per half step
        super().__init__(seed)

    def _rescale(self, sys: MDState) -> None:
        ke = sys.kinetic_energy()
        if ke <= 0.0:
            return
        target = 0.5 * self.ndof * self.kT
        r1 = self.rng.standard_normal()
        rest = 2.0 * self.rng.standard_gamma(0.5 * (self.ndof - 1)) if self.ndof > 1 else 0.0
        c, n = self.c, self.ndof
        ke_new = (c * ke + (1.0 - c) * target * (r1 * r1 + rest) / n
                  + 2.0 * r1 * np.sqrt(c * (1.0 - c) * ke * target / n))
        alpha = np.sqrt(ke_new / ke)
        if r1 + np.sqrt(c * n * ke / ((1.0 - c) * target)) < 0.0:
            alpha = -alpha
        sys.velocities = sys.velocities * alpha
        self.thermostat_energy -= ke_new - ke

    def step(self, sys: MDState, compute) -> None:
        self._rescale(sys)
        _verlet(sys, compute, self.dt)
        self._rescale(sys)
        sys.step += 1

class NoseHooverChain:
    """Nosé–Hoover chain thermostat (Martyna–Tuckerman–Klein), velocity-Verlet splitting.

    Chain of `length` thermostats with time constant `tau_fs`; the half-step chain update uses
    the standard Trotter factorisation with a single Suzuki–Yoshida weight.
    """

    name = "nose-hoover"

    def __init__(self, dt_fs: float, temperature: float, ndof: int, tau_fs: float = 100.0, length: int = 3):
        self.dt = dt_fs * units.fs
        self.kT = units.kB * temperature
        self.ndof = ndof
        tau = tau_fs * units.fs
        self.Q = np.full(length, self.kT * tau**2)
        self.Q[0] *= ndof
        self.xi = np.zeros(length)
        self.vxi = np.zeros(length)

    @property
    def thermostat_energy(self) -> float:
        return float(0.5 * np.sum(self.Q * self.vxi**2) + self.ndof * self.kT * self.xi[0] + self.kT * np.sum(self.xi[1:]))

    def _chain_half(self, sys: MDState) -> None:
        h = 0.5 * self.dt
        M = len(self.xi)
        ke2 = 2.0 * sys.kinetic_energy()
        G = np.empty(M)
        G[0] = (ke2 - self.ndof * self.kT) / self.Q[0]
        for k in range(1, M):
            G[k] = (self.Q[k - 1] * self.vxi[k - 1] ** 2 - self.kT) / self.Q[k]
        self.vxi[M - 1] += 0.5 * h * G[M - 1]
        for k in range(M - 2, -1, -1):
            scale = np.exp(-0.25 * h * self.vxi[k + 1])
            self.vxi[k] = (self.vxi[k] * scale + 0.5 * h * G[k]) * scale
        self.xi += h * self.vxi
        factor = np.exp(-h * self.vxi[0])
        sys.velocities = sys.velocities * factor
        ke2 *= factor * factor
        G[0] = (ke2 - self.ndof * self.kT) / self.Q[0]
        for k in range(M - 1):
            scale = np.exp(-0.25 * h * self.vxi[k + 1])
            self.vxi[k] = (self.vxi[k] * scale + 0.5 * h * G[k]) * scale
            G[k + 1] = (self.Q[k] * self.vxi[k] ** 2 - self.kT) / self.Q[k + 1]
        self.vxi[M - 1] += 0.5 * h * G[M - 1]

    def step(self, sys: MDState, compute) -> None:
        self._chain_half(sys)
        _verlet(sys, compute, self.dt)
        self._chain_half(sys)
        sys.step += 1

    def state(self) -> dict:
        return {"xi": self.xi.copy(), "vxi": self.vxi.copy()}

    def load_state(self, st: dict) -> None:
        self.xi = np.array(st["xi"], dtype=np.float64)
        self.vxi = np.array(st["vxi"], dtype=np.float64)


def make_integrator(kind: str, dt_fs: float, temperature: float, natoms: int, seed: int = 0,
                    friction_per_fs: float = 0.01, tau_fs: float = 100.0):
    if kind == "nve":
        return VelocityVerlet(dt_fs)
    if kind == "langevin":
        return Langevin(dt_fs, temperature, friction_per_fs=friction_per_fs, seed=seed)
    if kind == "csvr":
        return CSVR(dt_fs, temperature, ndof=3 * natoms - 3, tau_fs=tau_fs, seed=seed)
    if kind in ("nose-hoover", "nh", "nhc"):
        return NoseHooverChain(dt_fs, temperature, ndof=3 * natoms - 3, tau_fs=tau_fs)
    from nvnmd.errors import NvnmdError

    raise NvnmdError(f"unknown ensemble '{kind}' (choose nve, langevin, csvr, nose-hoover)")


def maxwell_boltzmann(masses: np.ndarray, temperature: float, seed: int) -> np.ndarray:
    """Velocities at `temperature` with zero total momentum, from a seeded PCG64 stream."""
    rng = np.random.Generator(np.random.PCG64(seed))
    v = rng.standard_normal((len(masses), 3)) * np.sqrt(units.kB * temperature / masses)[:, None]
    v -= np.sum(masses[:, None] * v, axis=0) / np.sum(masses)
    return v
