"""manifest.json of a distillation directory: what was asked, what was made, how long it took.

    {"version": 1, "parameters": {...}, "seeds": {...}, "teacher": {spec, sha256, path},
     "structure": {path, sha256}, "stages": {name: {status, wall_s, attempts, outputs: {file: sha256}}}}

A run over several compositions has "structures": [{name, path, sha256}, ...] and "type_map"
in place of "structure".

Rewritten atomically after every change, so a kill -9 leaves the last consistent state.
A stage is `done` only after its outputs are complete; a stage found `running` on resume was
killed and is continued (its wall time so far is kept from the last progress heartbeat).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nvnmd.errors import NvnmdError
from nvnmd.image import write_atomic

VERSION = 1
HEARTBEAT_S = 30.0


class Manifest:
    def __init__(self, outdir: Path):
        self.outdir = Path(outdir)
        self.path = self.outdir / "manifest.json"
        self.data = {"version": VERSION, "stages": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError as exc:
                raise NvnmdError(f"{self.path}: not a readable manifest ({exc})") from None
            if self.data.get("version") != VERSION:
                raise NvnmdError(f"{self.path}: unknown manifest version {self.data.get('version')}")
        self._beat = 0.0

    def save(self) -> None:
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_atomic(self.path, (json.dumps(self.data, indent=1, sort_keys=False) + "\n").encode())

    def bind(self, parameters: dict, extra: dict, first_stage: dict | None = None, stages: tuple = ()) -> None:
        """Record the run's parameters, or refuse ones that differ from a previous run's.

        A changed parameter is accepted while neither the first stage it affects (`first_stage`, in
        `stages` order) nor any later one has started: nothing written so far was made with it. (Later
        ones count because a stage may be skipped: a run without the ensemble never starts explore,
        yet its train was made without the frames explore would add.)
        """
        old = self.data.get("parameters")
        if old is not None:
            changed = sorted(k for k in set(old) | set(parameters) if old.get(k) != parameters.get(k))
            first_stage = first_stage or {}

            def user(k):  # the first started stage from k's first stage on, or None
                first = first_stage.get(k, stages[0] if stages else "")
                later = stages[stages.index(first):] if first in stages else (first,)
                return next((s or "the run" for s in later if self._started(s)), None)

            used = [(k, user(k)) for k in changed if user(k)]
            if used:
                where = ", ".join(f"{k} (used by {stage})" for k, stage in used)
                raise NvnmdError(f"{self.outdir} was made with other parameters: {where}; "
                                 f"rerun with the same ones to resume, or use a new -o")
        self.data["parameters"] = parameters
        for key, value in extra.items():
            prev = self.data.get(key)
            if prev is not None and key in ("teacher", "structure") and prev.get("sha256") != value.get("sha256"):
                raise NvnmdError(f"{self.outdir} was made with another {key} (sha256 {prev.get('sha256', '')[:16]}); "
                                 f"use a new -o")
            if prev is not None and key == "structures":  # several compositions: each file's content
                old_sha = {p.get("name"): p.get("sha256") for p in prev}
                for entry in value:
                    if entry["name"] in old_sha and old_sha[entry["name"]] != entry.get("sha256"):
                        raise NvnmdError(f"{self.outdir} was made with another structure {entry['name']} (sha256 "
                                         f"{(old_sha[entry['name']] or '')[:16]}); use a new -o")
            self.data[key] = value
        self.data.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.save()

    def _started(self, name: str) -> bool:
        st = self.data["stages"].get(name)
        return not name or bool(st) and st.get("status", "pending") != "pending"

    def stage(self, name: str) -> dict:
        return self.data["stages"].setdefault(name, {"status": "pending", "wall_s": 0.0, "attempts": 0})

    def done(self, name: str) -> bool:
        st = self.data["stages"].get(name)
        if not st or st.get("status") != "done":
            return False
        return all((self.outdir / rel).exists() for rel in st.get("outputs", {}))

    def start(self, name: str) -> None:
        st = self.stage(name)
        if st.get("status") == "running" and st.get("last_progress") and st.get("attempt_start"):
            st["wall_s"] += max(0.0, st["last_progress"] - st["attempt_start"])  # the killed attempt
        st.update(status="running", attempts=st.get("attempts", 0) + 1, attempt_start=time.time(),
                  last_progress=time.time())
        self.save()

    def heartbeat(self, name: str) -> None:
        now = time.time()
        if now - self._beat >= HEARTBEAT_S:
            self._beat = now
            self.stage(name)["last_progress"] = now
            self.save()

    def finish(self, name: str, outputs: list[Path], info: dict | None = None) -> float:
        from nvnmd.backends.teacher import file_sha256

        st = self.stage(name)
        wall = time.time() - st.get("attempt_start", time.time())
        st["wall_s"] = round(st.get("wall_s", 0.0) + wall, 1)
        st["outputs"] = {str(Path(p).relative_to(self.outdir)): file_sha256(p) for p in outputs}
        if info:
            st["info"] = info
        st["status"] = "done"
        st.pop("attempt_start", None)
        st.pop("last_progress", None)
        self.save()
        return st["wall_s"]
