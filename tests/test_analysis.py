"""Transport analysis: FFT MSD equals the direct average, D/σ/Arrhenius recover known values."""

import numpy as np
import pytest

from nvnmd.analysis.conductivity import KB_EV, arrhenius, diffusion, msd_fft, nernst_einstein


def test_msd_fft_matches_direct_average():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(64, 5, 3)), axis=0)
    direct = np.array([np.mean(np.sum((x[lag:] - x[:len(x) - lag]) ** 2, axis=2)) for lag in range(len(x))])
    np.testing.assert_allclose(msd_fft(x), direct, rtol=1e-10, atol=1e-10)


def test_random_walk_diffusion_coefficient():
    rng = np.random.default_rng(1)
    D_true = 1e-5  # cm²/s = 0.1 Å²/ps
    dt = 0.02  # ps
    steps = rng.normal(scale=np.sqrt(2 * 0.1 * dt), size=(4000, 200, 3))
    x = np.cumsum(steps, axis=0)
    res = diffusion(np.arange(4000) * dt, x, np.ones(200, bool))
    assert res["D_cm2_s"] == pytest.approx(D_true, rel=0.15)
    assert 0 < res["D_err_cm2_s"] < 0.2 * D_true


def test_nernst_einstein_lgps_magnitude():
    # 20 Li in a 50-atom LGPS cell (~975 Å^3), D = 1e-5 cm²/s at 900 K -> σ ≈ 0.41 S/cm
    sigma = nernst_einstein(1e-5, 20, 975.0, 900.0)
    n = 20 / 975e-24
    expected = n * (1.602176634e-19) ** 2 * 1e-5 / (1.380649e-23 * 900.0) * 1e3
    assert sigma == pytest.approx(expected, rel=1e-12) and 300 < sigma < 500


def test_arrhenius_recovers_activation_energy():
    T = np.array([600.0, 800.0, 1000.0, 1200.0])
    Ea, A = 0.23, 5e6
    sigma = A / T * np.exp(-Ea / (KB_EV * T))
    fit = arrhenius(T, sigma, sigma * 0.05)
    assert fit["Ea_eV"] == pytest.approx(Ea, abs=1e-9)
    assert fit["sigma_300K_mS_cm"] == pytest.approx(A / 300 * np.exp(-Ea / (KB_EV * 300)), rel=1e-9)
    assert fit["Ea_err_eV"] > 0


def test_centre_of_mass_drift_is_removed():
    rng = np.random.default_rng(2)
    dt = 0.02
    frames, n = 2000, 100
    x = np.cumsum(rng.normal(scale=np.sqrt(2 * 0.1 * dt), size=(frames, n, 3)), axis=0)
    masses = np.ones(n)
    x -= x.mean(axis=1, keepdims=True)  # zero net drift of the diffusing atoms
    drift = np.cumsum(rng.normal(scale=0.5, size=(frames, 1, 3)), axis=0)  # whole-system wander
    mask = np.ones(n, bool)
    clean = diffusion(np.arange(frames) * dt, x, mask, masses=masses)["D_cm2_s"]
    drifted = diffusion(np.arange(frames) * dt, x + drift, mask, masses=masses)["D_cm2_s"]
    raw = diffusion(np.arange(frames) * dt, x + drift, mask)["D_cm2_s"]
    assert drifted == pytest.approx(clean, rel=1e-9)
    assert abs(raw - clean) > 0.5 * clean


def test_diffusion_error_bar_matches_the_scatter_of_D():
    # Independent random walks: the reported D error must describe how much D actually varies
    # between repeated runs (fitting long lags with few origins made it ~2x too small).
    rng = np.random.default_rng(3)
    dt, frames, n = 0.05, 800, 40
    D, err = [], []
    for _ in range(60):
        x = np.cumsum(rng.normal(scale=np.sqrt(2 * 0.5 * dt), size=(frames, n, 3)), axis=0)
        res = diffusion(np.arange(frames) * dt, x, np.ones(n, bool))
        D.append(res["D_cm2_s"])
        err.append(res["D_err_cm2_s"])
    assert np.mean(D) == pytest.approx(5e-5, rel=0.05)
    ratio = np.sqrt(np.mean(np.square(err))) / np.std(D, ddof=1)
    assert 0.8 < ratio < 2.0


def test_arrhenius_errors_follow_the_scatter_when_error_bars_are_missing_or_too_small():
    rng = np.random.default_rng(4)
    T = np.array([600.0, 700.0, 800.0, 900.0, 1000.0])
    sigma = 5e6 / T * np.exp(-0.2 / (KB_EV * T)) * np.exp(rng.normal(scale=0.2, size=T.size))
    unweighted = arrhenius(T, sigma)
    missing = arrhenius(T, sigma, np.full(T.size, np.nan))
    tiny = arrhenius(T, sigma, sigma * 1e-6)
    assert unweighted["Ea_err_eV"] > 0.01
    for fit in (missing, tiny):
        assert fit["Ea_eV"] == pytest.approx(unweighted["Ea_eV"], rel=1e-9)
        assert fit["Ea_err_eV"] == pytest.approx(unweighted["Ea_err_eV"], rel=1e-6)
        assert fit["sigma_300K_err_mS_cm"] == pytest.approx(unweighted["sigma_300K_err_mS_cm"], rel=1e-6)


def test_short_run_fit_starts_after_the_cage_regime():
    # Random walk plus a rattle that decorrelates in 0.5 ps (an Ornstein-Uhlenbeck "cage"):
    # the MSD rises steeply over the first ~1 ps. A 10 ps run must still give the long-time D.
    rng = np.random.default_rng(5)
    dt, frames, n, tau, amp = 0.02, 500, 200, 0.5, 0.7
    walk = np.cumsum(rng.normal(scale=np.sqrt(2 * 0.1 * dt), size=(frames, n, 3)), axis=0)
    rattle = np.empty_like(walk)
    rattle[0] = rng.normal(scale=amp, size=(n, 3))
    keep = np.exp(-dt / tau)
    for f in range(1, frames):
        rattle[f] = keep * rattle[f - 1] + rng.normal(scale=amp * np.sqrt(1 - keep**2), size=(n, 3))
    res = diffusion(np.arange(frames) * dt, walk + rattle, np.ones(n, bool))
    assert res["fit_window_ps"][0] >= 2.0 - 1e-9
    assert res["D_cm2_s"] == pytest.approx(1e-5, rel=0.2)
    assert np.isfinite(res["D_err_cm2_s"])


def test_too_short_runs_are_flagged_and_long_enough_runs_are_not():
    # The fit wants lags from min_lag (2 ps) to at least twice that, in two blocks: 10 ps.
    rng = np.random.default_rng(6)
    dt, n = 0.02, 50
    walk = np.cumsum(rng.normal(scale=np.sqrt(2 * 0.1 * dt), size=(1000, n, 3)), axis=0)
    for frames, flagged in ((150, True), (499, True), (500, False), (1000, False)):
        res = diffusion(np.arange(frames) * dt, walk[:frames], np.ones(n, bool))
        assert (res["warning"] is not None) == flagged, (frames, res["warning"])
    short = diffusion(np.arange(150) * dt, walk[:150], np.ones(n, bool))
    lo, hi = short["fit_window_ps"]
    assert lo < 2.0 and f"{lo:.2f}-{hi:.2f} ps" in short["warning"] and "need ≥ 10 ps" in short["warning"]
