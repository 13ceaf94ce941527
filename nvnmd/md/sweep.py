"""The conductivity sweep on dask.distributed: one task per (structure, temperature) run.

* `connect(scheduler, workers)`: a dask Client, on an existing scheduler (`--scheduler
  tcp://host:port`, checked to answer before anything is submitted) or on a LocalCluster of
  worker processes, one thread each, no dashboard, every socket on 127.0.0.1.
* `run_sweep(client, runs, make_backend, backend_spec, ...)`: submits `run_task` for every run, shows one
  tqdm bar per run in the client and returns each run's analysis in the order of `runs`.
* `run_task` (on a worker): locks the run directory, builds the backend from its spec (once
  per worker process), checks that it is what the client planned for (the image's SHA-256
  and the rest of the run's identity), brings the run to its end with
  `workflow.advance_run` (finished: skipped; checkpointed: resumed; else started) and
  analyses it. A task that is retried after its worker died resumes from the checkpoint.
Progress: the task logs dask events (`Worker.log_event`) on a topic of its sweep, at most a
few per second per run; the client subscribes to the topic. Events travel over the
scheduler's connections, so progress works the same on a remote cluster, costs no polling
of files, and a task's own log lines (resume, guard) reach the client the same way. The run
directories themselves must be on a filesystem the workers and the client share: the
trajectories are the product, and the client checks checkpoints before it submits.
Determinism: the forces are integers, so where a run is computed changes no bit of its
trajectory (tests/test_sweep.py compares a dask run with a serial one byte for byte).
"""

from __future__ import annotations

import fcntl
import os
import queue
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from nvnmd.errors import NvnmdError

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT_S = 10.0
EVENTS_PER_SECOND = 4  # per run: enough for a live bar, negligible next to an MD step


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def check_address(address: str) -> None:
    """A one-line NvnmdError unless `address` is tcp://HOST:PORT (or tls://) and something
    accepts connections there; dask's own client would retry for its whole timeout first."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise NvnmdError(f"--scheduler {address}: not a scheduler address like tcp://127.0.0.1:8786")
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise NvnmdError(f"--scheduler {address}: cannot connect ({exc.strerror or type(exc).__name__})") from None
    if parts.scheme == "tcp":  # ask who answers: something else would keep dask's client waiting
        who = _identity(f"tcp://{parts.hostname}:{port}")
        if who != "Scheduler":
            raise NvnmdError(f"--scheduler {address}: not a dask scheduler ({who})")


def _identity(address: str) -> str:
    """The `type` a dask server at `address` reports ('Scheduler', 'Worker', ...), or why none did."""
    import asyncio

    from distributed.core import rpc

    async def ask():
        r = rpc(address)
        try:
            return await r.identity()
        finally:
            await r.close_rpc()

    try:
        reply = asyncio.run(asyncio.wait_for(ask(), CONNECT_TIMEOUT_S / 2))
    except (asyncio.TimeoutError, TimeoutError):
        return f"no dask handshake within {CONNECT_TIMEOUT_S / 2:g} s"
    except Exception as exc:  # a closed stream, garbage instead of msgpack: not dask
        return f"no dask reply: {type(exc).__name__}"
    return str(reply.get("type", "?")) if isinstance(reply, dict) else "no dask reply"


@contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, tasks: int | None = None, log=print):
    """A dask Client for the sweep (closed, with its LocalCluster, on leaving); a local
    cluster gets no more workers than the sweep has `tasks`."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        check_address(scheduler)
        address = scheduler if "://" in scheduler else f"tcp://{scheduler}"
        import dask

        try:  # dask retries a failed handshake for its connect timeout (30 s by default): ours is shorter
            with dask.config.set({"distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT_S:g}s"}):
                client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise NvnmdError(f"--scheduler {scheduler}: no dask scheduler answered ({exc})".splitlines()[0]) from None
        try:
            n = len(client.scheduler_info().get("workers", {}))
            log(f"dask: scheduler {address}, {n} worker(s) now")
            yield client
        finally:
            client.close()
        return
    n = workers or default_workers()
    if n < 1:
        raise NvnmdError(f"--workers must be ≥ 1, got {n}")
    n = min(n, tasks or n)
    # dashboard off; the scheduler's HTTP endpoint (health, metrics) on a free loopback port
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host=LOOPBACK,
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": f"{LOOPBACK}:0"},
                               silence_logs=logging.ERROR)
    except (OSError, RuntimeError, TimeoutError) as exc:  # no free port, no processes, a worker that died at start
        raise NvnmdError(f"cannot start a local dask cluster of {n} worker(s): {str(exc).splitlines()[0]}") from None
    try:
        client = Client(cluster)
        try:
            hosts = sorted({urlsplit(w).hostname for w in client.scheduler_info()["workers"]})
            log(f"dask: local cluster at {cluster.scheduler_address}, {n} worker process(es) on "
                f"{', '.join(hosts)}, 1 thread each, no dashboard")
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


# --- on the worker -------------------------------------------------------------------------

_BACKENDS: dict = {}  # per worker process: backend spec -> backend, built once


def _backend(make_backend, spec: dict, image_sha256: str | None):
    # the image's digest is part of the key: a long-lived worker builds anew for a changed file
    key = (tuple(sorted((k, str(v)) for k, v in spec.items())), image_sha256)
    if spec["name"] == "board" or key not in _BACKENDS:  # a board link is per run
        backend = make_backend(spec["name"], image=spec.get("image"), model=spec.get("model"), url=spec.get("url"),
                               threads=spec.get("threads", 1), teacher=spec.get("teacher"))[0]
        if spec.get("no_guard"):
            backend.guard = None
        if spec["name"] == "board":
            return backend
        _BACKENDS[key] = backend
    return _BACKENDS[key]


@contextmanager
def _locked(run_dir: Path):
    """Only one process writes a run directory: an orphan of a killed sweep that still runs
    cannot interleave its steps with the resumed sweep's. flock is released by the kernel
    when its process dies, so a kill -9 never leaves the directory locked."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NvnmdError(f"{run_dir} is being written by another process (a sweep still running?)") from None
        yield
    finally:
        os.close(fd)


def run_task(run, make_backend, spec: dict, identity: dict, topic: str, key: str, ion: str = "Li") -> dict:
    """One run of a sweep, on a dask worker: advance it to its end, analyse it."""
    from distributed import Lock, get_worker

    from nvnmd.md.engine import run_identity
    from nvnmd.md.workflow import advance_run, analyse_run

    worker = get_worker()
    last = [0.0]

    def emit(kind, **msg):
        worker.log_event(topic, {"key": key, "kind": kind, **msg})

    def on_step(step, total):
        now = time.monotonic()
        if step == total or now - last[0] >= 1.0 / EVENTS_PER_SECOND:
            last[0] = now
            emit("step", step=int(step), total=int(total))

    backend = None
    with _locked(Path(run.run_dir)):
        lock = Lock(f"nvnmd-board-{spec.get('url')}") if spec["name"] == "board" else None  # one board, one run at a time
        if lock is not None:
            lock.acquire()
        try:
            backend = _backend(make_backend, spec, identity.get("image_sha256"))
            have = run_identity(run.atoms, backend)
            differs = [k for k in ("backend", "image_sha256", "model_sha256", "guard")
                       if identity.get(k) is not None and have.get(k) != identity.get(k)]
            if differs:
                raise NvnmdError(f"worker {worker.address}: the backend built here differs from the client's in "
                                 f"{', '.join(differs)} (the workers must see the same image and model files)")
            done = advance_run(run, backend, progress=False, log=lambda text: emit("log", text=text), on_step=on_step)
        finally:
            if lock is not None:
                lock.release()
            if spec["name"] == "board" and backend is not None:
                backend.close()
    result = analyse_run(Path(run.run_dir), run.T, ion)
    result["done"] = {k: done[k] for k in ("state", "from_step", "seconds", "us_per_atom_step") if k in done}
    return result


# --- in the client -------------------------------------------------------------------------

def run_sweep(client, runs, make_backend, spec: dict, identity: dict, ion: str = "Li", progress: bool = True,
              log=print) -> list[dict]:
    """Every run through dask, one task each; their analyses in the order of `runs`.
    `make_backend(name, **spec)` is the backend factory (nvnmd.backends.make_backend): the md
    layer sees only the Backend interface, so the command that wires the layers hands it in,
    and dask sends it to the workers by reference. A run
    that fails does not stop the others; the failures are raised together at the end (the
    finished and checkpointed runs are kept, so the same command resumes)."""
    from distributed import wait

    from nvnmd.md.workflow import steps_done

    topic = f"nvnmd-sweep-{uuid.uuid4().hex[:12]}"
    inbox: queue.Queue = queue.Queue()
    client.subscribe_topic(topic, lambda event: inbox.put(event[1]))
    keys = [f"nvnmd-run-{r.label}-T{int(round(r.T))}K-{topic[-12:]}" for r in runs]
    bars = {}
    if progress:
        from tqdm import tqdm

        width = max(len(f"{r.label} {r.T:g} K") for r in runs)
        for i, (r, k) in enumerate(zip(runs, keys)):
            bars[k] = tqdm(total=r.config.steps, initial=max(steps_done(r.run_dir), 0), unit="step", position=i,
                           desc=f"{r.label} {r.T:g} K".ljust(width), dynamic_ncols=True, mininterval=0.5, leave=True)
    say = (lambda text: bars[keys[0]].write(text)) if bars else log
    # absolute run directories: a remote worker's working directory is not the client's
    futures = [client.submit(run_task, replace(r, run_dir=Path(r.run_dir).resolve()), make_backend, spec, identity, topic, k, ion,
                             key=k, pure=False) for r, k in zip(runs, keys)]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(runs)
    failures = []
    pending = set(futures)
    try:
        while pending:
            try:
                finished, pending = wait(pending, timeout=0.25, return_when="FIRST_COMPLETED")
            except TimeoutError:  # none finished in the interval: show progress, wait on
                finished = ()
            _drain(inbox, bars, say)
            for f in finished:
                i = index[f.key]
                r = runs[i]
                if f.status == "finished":
                    results[i] = f.result()
                    if keys[i] in bars:
                        bars[keys[i]].n = r.config.steps
                        bars[keys[i]].refresh()
                elif f.status == "cancelled":  # the scheduler dropped it (restarted, or lost)
                    failures.append(f"{r.label} T = {r.T:g} K: cancelled by the scheduler")
                else:
                    exc = f.exception()
                    if not isinstance(exc, NvnmdError) and type(exc).__name__ != "KilledWorker":
                        raise exc
                    failures.append(f"{r.label} T = {r.T:g} K: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        time.sleep(0.1)
        _drain(inbox, bars, say)
    finally:
        for b in bars.values():
            b.close()
        client.unsubscribe_topic(topic)
        for f in futures:
            f.release()
    if failures:
        raise NvnmdError(f"{len(failures)} of {len(runs)} runs failed ({'; '.join(failures)}); the other runs are "
                         f"finished or checkpointed: the same command resumes them")
    return results


def _drain(inbox: queue.Queue, bars: dict, say) -> None:
    while True:
        try:
            msg = inbox.get_nowait()
        except queue.Empty:
            return
        if msg.get("kind") == "step" and msg["key"] in bars:
            bar = bars[msg["key"]]
            bar.n = msg["step"]
            bar.refresh()
        elif msg.get("kind") == "log":
            say(msg["text"])
