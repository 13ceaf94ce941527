"""Li-ion transport from trajectories: MSD (FFT, all time origins), D ± error, σ, Arrhenius.

* `msd_fft(x)`: per-particle MSD over every time origin in O(F log F) (Calandrini et al.).
* `diffusion(times, positions, mask)`: tracer D of the selected atoms from a linear fit of
  the MSD over a diffusive lag window (ballistic start excluded), with the uncertainty from
  non-overlapping blocks of the trajectory fitted over the same lag window (standard error
  of the block mean). The window is a fraction of the block length, so the full-run D and
  its error measure the same thing; fitting the full run out to long lags (few origins)
  would be about twice as noisy as the block error says.
* `nernst_einstein(D, n_ions, volume, T)`: σ = N q² D / (V k_B T), N = number of Li in V.
* `arrhenius(T, sigma, err)`: weighted fit of ln(σT) = ln A − Ea/(k_B T); Ea and σ(300 K)
  with uncertainties from the fit covariance, inflated by the reduced χ² when the points
  scatter more than their error bars say (few blocks give rough error bars).
Units: Å, ps, K; D in cm²/s, σ in mS/cm, Ea in eV.
"""

from __future__ import annotations

import numpy as np

KB_EV = 8.617333262e-5  # eV/K
E_CHARGE = 1.602176634e-19  # C
KB_J = 1.380649e-23  # J/K
A2PS_TO_CM2S = 1e-16 / 1e-12  # Å²/ps -> cm²/s


def msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD[lag] averaged over origins and particles; x is [F, N, 3] unwrapped positions."""
    F = x.shape[0]
    d = np.sum(x**2, axis=2)  # [F, N]
    d = np.concatenate([d, np.zeros((1, d.shape[1]))])
    q = 2.0 * d.sum(axis=0)
    s1 = np.empty((F, x.shape[1]))
    for m in range(F):
        q = q - d[m - 1] - d[F - m]
        s1[m] = q / (F - m)
    n = 2 * F
    fx = np.fft.rfft(x, n=n, axis=0)
    ac = np.fft.irfft(fx * fx.conj(), n=n, axis=0)[:F].sum(axis=2)
    s2 = ac / (F - np.arange(F))[:, None]
    return np.mean(s1 - 2.0 * s2, axis=1)


def _fit_slope(t: np.ndarray, y: np.ndarray) -> float:
    A = np.vstack([t, np.ones_like(t)]).T
    return float(np.linalg.lstsq(A, y, rcond=None)[0][0])


def remove_com_drift(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Positions relative to the centre of mass: a Langevin bath kicks every atom independently,
    so the total momentum random-walks and would otherwise add to every atom's MSD."""
    com = np.einsum("fnx,n->fx", positions, masses) / np.sum(masses)
    return positions - com[:, None, :]


def diffusion(times: np.ndarray, positions: np.ndarray, mask: np.ndarray, window=(0.2, 0.8), nblocks: int = 4,
              masses: np.ndarray | None = None, min_lag_ps: float = 2.0) -> dict:
    """Tracer diffusion coefficient of atoms in `mask` (cm²/s) with a block-average error.

    `window` is the fitted lag range as fractions of one block (len(times) // nblocks frames);
    the full run and every block are fitted over the same lags. The fit never starts before
    `min_lag_ps` (Li in sulfides rattles in its cage for ~1–2 ps; earlier lags overstate D):
    for short runs, fewer and longer blocks are used so that the window stays past it.
    A run too short to fit lags from `min_lag_ps` to twice that still gets a fit, but the
    result carries a `warning` saying which lags were fitted and how long a run is needed.
    With `masses`, the centre-of-mass drift of the whole system is removed first."""
    if masses is not None:
        positions = remove_com_drift(positions, np.asarray(masses, dtype=np.float64))
    x = positions[:, mask, :]
    dt = float(times[1] - times[0])
    min_lo = int(np.ceil(min_lag_ps / dt - 1e-9))
    nblocks = max(int(nblocks), 1)
    while nblocks > 2 and window[1] * (len(times) // nblocks) < 2 * min_lo:
        nblocks -= 1
    size = len(times) // nblocks
    if size < 8:  # too short to block: fit the whole run
        nblocks, size = 1, len(times)
    lo = min(max(int(window[0] * size), min_lo), size - 3)
    hi = max(int(window[1] * size), lo + 2)
    msd = msd_fft(x)
    lags = np.arange(len(msd)) * dt
    D = _fit_slope(lags[lo:hi], msd[lo:hi]) / 6.0 * A2PS_TO_CM2S
    blocks = []
    if nblocks > 1:
        for b in range(nblocks):
            mb = msd_fft(x[b * size:(b + 1) * size])
            blocks.append(_fit_slope(lags[lo:hi], mb[lo:hi]) / 6.0 * A2PS_TO_CM2S)
    err = float(np.std(blocks, ddof=1) / np.sqrt(len(blocks))) if len(blocks) > 1 else float("nan")
    warning = None
    if lo < min_lo or hi < 2 * min_lo:
        needed = 2 * 2 * min_lo * dt / window[1]  # two blocks whose window reaches 2 x min_lag
        warning = (f"run too short for a diffusive fit: D was fitted over lags {lags[lo]:.2f}-{lags[hi - 1]:.2f} ps "
                   f"({hi - lo} points) instead of {min_lag_ps:g}-{2 * min_lag_ps:g} ps or more, where Li still "
                   f"rattles in its cage; D and its error are unreliable (analysed length {times[-1] - times[0]:.1f} ps, "
                   f"need ≥ {needed:.0f} ps)")
    return {"D_cm2_s": D, "D_err_cm2_s": err, "msd_A2": msd, "lag_ps": lags, "fit_window_ps": [float(lags[lo]), float(lags[hi - 1])],
            "blocks_D_cm2_s": blocks, "warning": warning}


def nernst_einstein(D_cm2_s: float, n_ions: int, volume_A3: float, temperature: float, charge: int = 1) -> float:
    """σ in mS/cm from the tracer D (cm²/s), N ions of charge `charge` in V (Å³)."""
    n_per_cm3 = n_ions / (volume_A3 * 1e-24)
    sigma_S_cm = n_per_cm3 * (charge * E_CHARGE) ** 2 * D_cm2_s / (KB_J * temperature)
    return sigma_S_cm * 1e3


def arrhenius(temperatures, sigma_mS_cm, sigma_err=None, t_eval: float = 300.0) -> dict:
    """Fit ln(σT) = ln A − Ea/(k_B T); returns Ea ± err (eV) and σ(t_eval) ± err (mS/cm)."""
    T = np.asarray(temperatures, dtype=float)
    s = np.asarray(sigma_mS_cm, dtype=float)
    if len(T) < 2 or np.any(s <= 0):
        note = (f"Ea and σ({t_eval:g} K) need runs at two temperatures or more; there is {len(T)}" if len(T) < 2
                else "need ≥ 2 temperatures with positive σ")
        return {"Ea_eV": float("nan"), "Ea_err_eV": float("nan"), "sigma_300K_mS_cm": float("nan"),
                "sigma_300K_err_mS_cm": float("nan"), "note": note}
    y = np.log(s * T)
    x = 1.0 / (KB_EV * T)
    weighted = sigma_err is not None and np.all(np.isfinite(sigma_err)) and np.all(np.asarray(sigma_err) > 0)
    w = 1.0 / (np.asarray(sigma_err, dtype=float) / s) ** 2 if weighted else np.ones_like(T)
    A = np.vstack([np.ones_like(x), -x]).T
    W = np.diag(w)
    cov = np.linalg.inv(A.T @ W @ A)
    coef = cov @ A.T @ W @ y
    resid = y - A @ coef
    dof = len(T) - 2
    chi2_red = float(resid @ W @ resid) / dof if dof > 0 else float("nan")
    if not weighted:  # unit weights: the scatter is the only error estimate
        cov = cov * (chi2_red if dof > 0 else float("nan"))
    elif dof > 0 and chi2_red > 1.0:  # error bars too small for the scatter: widen them
        cov = cov * chi2_red
    lnA, Ea = coef
    x0 = 1.0 / (KB_EV * t_eval)
    g = np.array([1.0, -x0])
    ln_st = lnA - Ea * x0
    ln_err = float(np.sqrt(g @ cov @ g))
    s300 = float(np.exp(ln_st) / t_eval)
    return {"Ea_eV": float(Ea), "Ea_err_eV": float(np.sqrt(cov[1, 1])), "sigma_300K_mS_cm": s300,
            "sigma_300K_err_mS_cm": s300 * ln_err, "lnA": float(lnA),
            "chi2_reduced": chi2_red, "weighted": bool(weighted)}
