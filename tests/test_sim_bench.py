"""`nvnmd bench`: the registry other parts extend, and its one-line refusal of unknown names."""

import os
import subprocess
import sys


def test_registry_has_sim():
    from nvnmd.bench import BENCHES

    module, func = BENCHES["sim"].split(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), func))


def test_unknown_bench_refused():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "nvnmd.cli", "bench", "nope"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["nvnmd: error: unknown benchmark 'nope' (known: host, link, sim, tf64)"]
