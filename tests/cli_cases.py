"""The bad-input cases of issue 16, run against one checkout: command, exit code, first line.

Not a pytest module (the tests that guard each fix live in tests/test_runs.py); this script
replays what a new user hits in the first hour against any checkout with a `.venv`, so the
same table can be made before and after a change:

    python tests/cli_cases.py --root CHECKOUT --work SCRATCH --json OUT.json
    python tests/cli_cases.py --table BEFORE.json AFTER.json > table.md

Every case is short (a few MD steps on the shipped 50-atom cell); the quantized images the
cases need are made once per run in SCRATCH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ENV = {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg",
       "DP_INTRA_OP_PARALLELISM_THREADS": "1", "DP_INTER_OP_PARALLELISM_THREADS": "1"}
UNWRITABLE = "/sys/nvnmd-out"  # read-only for every user, root included
MD = ["md", "--backend", "sim", "--image", "def.nvq", "--supercell", "1,1,1", "--steps", "2", "--quiet"]


def first_line(stdout: str, stderr: str) -> str:
    """The message a user reads: the first line of stderr that is not a progress bar or a
    library warning (the `nvnmd: error` line where there is one); else the last line of stdout."""
    errors = [s.strip() for s in stderr.splitlines() if s.startswith("nvnmd:")]
    if errors:
        return errors[0]
    for line in stderr.splitlines():
        s = line.strip()
        if s and "it/s]" not in s and "step/s]" not in s and not s.startswith(("WARNING", "warnings.warn", "/")):
            return s
    lines = [s.strip() for s in stdout.splitlines() if s.strip()]
    return lines[-1] if lines else ""


class Runner:
    def __init__(self, root: Path, work: Path):
        self.root, self.work = root, work
        self.nvnmd = str(root / ".venv" / "bin" / "nvnmd")
        self.python = str(root / ".venv" / "bin" / "python")
        self.rows: list[dict] = []

    def sh(self, argv, timeout=300, limit_kb=None):
        env = dict(os.environ, **ENV)
        cmd = [self.nvnmd, *argv]
        pre = None
        if limit_kb:
            def pre():
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (limit_kb * 1024, limit_kb * 1024))
        t0 = time.time()
        try:
            p = subprocess.run(cmd, cwd=self.work, env=env, capture_output=True, text=True, timeout=timeout,
                               preexec_fn=pre)
            return p.returncode, p.stdout, p.stderr, time.time() - t0
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return f"timeout {timeout}s", out, err, time.time() - t0

    def case(self, name: str, argv: list[str], timeout=300, limit_kb=None, note: str = ""):
        rc, out, err, secs = self.sh(argv, timeout=timeout, limit_kb=limit_kb)
        msg = first_line(out, err)
        if "Traceback" in err:
            tail = err[err.rindex("Traceback"):].splitlines()
            raised = [s for s in tail if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", s)]
            msg = f"Traceback … {(raised or [tail[-1]])[-1].strip()}"
        row = {"case": name, "command": "nvnmd " + " ".join(argv), "rc": rc, "message": msg[:300],
               "seconds": round(secs, 1)}
        if note:
            row["note"] = note
        self.rows.append(row)
        print(f"[{rc}] {name}: {msg[:160]}", file=sys.stderr, flush=True)
        return rc, out, err

    def py(self, code: str):
        subprocess.run([self.python, "-c", code], cwd=self.work, env=dict(os.environ, **ENV), check=True)


def run_cases(r: Runner) -> None:
    w = r.work
    data = r.root / "nvnmd" / "data"
    other_pb = r.root / "student" / "candidates" / "lgps_student_axis8.pb"
    frames50 = data / "frames" / "lgps50"
    # the images every case uses, made once
    r.sh(["quantize", str(data / "lgps_student.pb"), "-o", "def.nvq"])
    r.sh(["quantize", str(other_pb), "-o", "other.nvq"])
    shutil.copy(other_pb, w / "other.pb")
    structure = (data / "lgps_relaxed.extxyz").read_text().splitlines()
    for bad, value in (("nan", "nan"), ("inf", "inf")):
        lines = list(structure)
        parts = lines[2].split()
        parts[1] = value
        lines[2] = " ".join(parts)
        (w / f"{bad}.extxyz").write_text("\n".join(lines) + "\n")
    Path(w / "afile").write_text("not a directory\n")
    r.py("from nvnmd.image import Image; im = Image.read('def.nvq'); im.meta['type_map'] = im.meta['type_map'][:3]; "
         "im.write('short_tm.nvq')")

    # temperatures <= 0, every backend
    for backend in ("sim", "tf64", "deepmd", "board", "auto"):
        extra = ["--url", "socket://127.0.0.1:9"] if backend == "board" else []
        argv = ["md", "--backend", backend, "--image", "def.nvq", *extra, "--supercell", "1,1,1", "--steps", "3",
                "-T", "0", "--quiet", "-o", f"t0_{backend}"]
        rc, out, err = r.case(f"-T 0, backend {backend}", argv)
        if rc == 0 and (w / f"t0_{backend}" / "thermo.csv").exists():
            last = (w / f"t0_{backend}" / "thermo.csv").read_text().strip().splitlines()[-1]
            r.rows[-1]["note"] = f"thermo last row: {last[:80]}"
    r.case("-T -100 (sim)", [*MD, "-T", "-100", "-o", "tneg"])
    r.case("conductivity -T 0,900", ["conductivity", "--backend", "sim", "--image", "def.nvq", "--supercell", "1,1,1",
                                     "-T", "0,900", "--steps", "3", "--quiet", "-o", "c_t0"])
    # structures and options
    r.case("NaN coordinate", [*MD, "--structure", "nan.extxyz", "-o", "nan"])
    r.case("inf coordinate", [*MD, "--structure", "inf.extxyz", "-o", "inf"])
    r.case("--traj-every 0", [*MD, "--traj-every", "0", "-o", "te0"])
    r.case("--checkpoint-every 0", [*MD, "--checkpoint-every", "0", "-o", "ce0"])
    r.case("--supercell a,b,c", [*MD[:5], "--supercell", "a,b,c", "--steps", "2", "--quiet", "-o", "sc"])
    r.case("--supercell 2,2", [*MD[:5], "--supercell", "2,2", "--steps", "2", "--quiet", "-o", "sc2"])
    r.case("--steps 0", [*MD, "--steps", "0", "-o", "s0"])
    # checkpoints
    # the run every resume case starts from: the same explicit settings in every checkout
    # (the defaults changed: Langevin 1 fs before issue 16, CSVR 2 fs after)
    base = [*MD, "--ensemble", "langevin", "--dt", "1"]
    r.sh([*base, "-o", "base", "--steps", "4", "--checkpoint-every", "2"])
    for name in ("trunc", "rand"):
        shutil.copytree(w / "base", w / name)
    raw = (w / "base" / "checkpoint.npz").read_bytes()
    (w / "trunc" / "checkpoint.npz").write_bytes(raw[: len(raw) // 2])
    (w / "rand" / "checkpoint.npz").write_bytes(os.urandom(len(raw)))
    r.case("truncated checkpoint, --resume", [*base, "--steps", "6", "--resume", "-o", "trunc"])
    r.case("random-bytes checkpoint, --resume", [*base, "--steps", "6", "--resume", "-o", "rand"])
    mismatches = [
        ("atom count", ["--supercell", "1,1,2"]), ("--dt", ["--dt", "2"]), ("-T", ["-T", "1200"]),
        ("--seed", ["--seed", "5"]), ("--ensemble", ["--ensemble", "csvr"]), ("--friction", ["--friction", "0.05"]),
        ("--traj-every", ["--traj-every", "1"]),
        ("--image (other model)", ["--image", "other.nvq"]), ("--backend deepmd", ["--backend", "deepmd"]),
        ("--no-guard", ["--no-guard"]),
    ]
    for k, (what, extra) in enumerate(mismatches):
        d = f"mm{k}"
        shutil.copytree(w / "base", w / d)
        argv = [*base, "--steps", "6", "--resume", "-o", d]
        if "--supercell" in extra:
            argv = [a for a in argv]
            argv[argv.index("--supercell") + 1] = extra[1]
        else:
            argv += extra
        rc, out, err = r.case(f"--resume with other {what}", argv)
        if rc == 0:
            thermo = (w / d / "thermo.csv").read_text().strip().splitlines()
            r.rows[-1]["note"] = "times in thermo.csv: " + ", ".join(l.split(",")[1][:6] for l in thermo[1:])
    shutil.copytree(w / "base", w / "again")
    r.case("md again into a run dir, no --resume", [*base, "-o", "again"])
    r.case("md again into a run dir, --overwrite", [*base, "--overwrite", "-o", "again"])
    # a cached model.nvq and another --model
    (w / "cache").mkdir()
    shutil.copy(w / "def.nvq", w / "cache" / "model.nvq")
    rc, out, err = r.case("cached model.nvq vs --model other.pb",
                          ["md", "--backend", "sim", "--model", "other.pb", "--supercell", "1,1,1", "--steps", "2",
                           "--quiet", "-o", "cache"])
    r.rows[-1]["note"] = "stdout: " + " / ".join(s for s in out.splitlines() if s.strip())[:200]
    # conductivity
    cond = ["conductivity", "--backend", "sim", "--image", "def.nvq", "--supercell", "1,1,1", "--steps", "40",
            "--traj-every", "2", "--quiet"]
    rc, out, err = r.case("conductivity at one temperature", [*cond, "-T", "900", "-o", "c1"])
    r.rows[-1]["note"] = "stdout: " + " / ".join(s for s in out.splitlines() if s.startswith("Ea") or "Ea and" in s)[:240]
    rc, out, err = r.case("conductivity re-run in the same -o with --dt 1", [*cond, "-T", "900", "--dt", "1", "-o", "c1"])
    if (w / "c1" / "conductivity.json").exists():
        md = json.loads((w / "c1" / "conductivity.json").read_text()).get("md", {})
        r.rows[-1]["note"] = f"conductivity.json md.dt_fs = {md.get('dt_fs')}"
    # a blow-up
    r.case("--dt 100 (blows up)", [*MD, "--dt", "100", "--steps", "50", "-o", "dt100"])
    # output paths, every command that writes
    for label, o in (("file-shaped", "afile"), ("under a file", "afile/sub"), ("unwritable", UNWRITABLE)):
        r.case(f"md -o {label}", [*MD, "-o", o])
        r.case(f"conductivity -o {label}", [*cond, "-T", "900", "-o", o])
        r.case(f"demo -o {label}", ["demo", "--steps", "20", "--quiet", "-o", o], timeout=600)
        r.case(f"quantize --report {label}", ["quantize", str(data / "lgps_student.pb"), "-o", "q.nvq",
                                              "--report", o])
        r.case(f"test --json {label}", ["test", "def.nvq", "-s", str(frames50), "--json",
                                        {"file-shaped": "base", "under a file": "afile/x.json"}.get(label, o + "/x.json")])
    r.case("quantize -o a directory", ["quantize", str(data / "lgps_student.pb"), "-o", "base"])
    r.case("quantize -o unwritable", ["quantize", str(data / "lgps_student.pb"), "-o", UNWRITABLE + "/x.nvq"])
    r.case("quantize -o under a file", ["quantize", str(data / "lgps_student.pb"), "-o", "afile/x.nvq"])
    r.case("bench --json unwritable", ["bench", "sim", "--repeat", "1", "--frames", str(frames50), "--image", "def.nvq",
                                       "--json", UNWRITABLE + "/b.json"], timeout=600)
    # images and structures that do not fit
    r.case("image with a shortened type_map (md)", [*MD[:4], "short_tm.nvq", *MD[5:], "-o", "stm"])
    r.case("image with a shortened type_map (test)", ["test", "short_tm.nvq", "-s", str(frames50)])
    r.case("--supercell 40,40,40 (3.2 M atoms)", [*MD[:6], "40,40,40", "--steps", "2", "--quiet", "-o", "big"],
           timeout=180, limit_kb=8 * 1024 * 1024, note="run under an 8 GiB address-space limit and 180 s")
    # permissions of what a valid run wrote
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in sorted((w / "base").iterdir())}
    modes.update({f"c1/{p.name}": oct(p.stat().st_mode & 0o777) for p in sorted((w / "c1").glob("conductivity.*"))})
    modes["def.nvq"] = oct((w / "def.nvq").stat().st_mode & 0o777)
    r.rows.append({"case": "file modes of outputs (umask 022)", "command": "stat", "rc": "",
                   "message": ", ".join(f"{k} {v}" for k, v in modes.items())})


def table(before: list[dict], after: list[dict]) -> str:
    out = ["| case | command | before: exit, message | after: exit, message |", "|---|---|---|---|"]
    by_case = {r["case"]: r for r in after}

    def cell(r):
        if r is None:
            return "–"
        s = f"**{r['rc']}** {r['message']}"
        if r.get("note"):
            s += f" _({r['note']})_"
        return s.replace("|", "\\|")

    for b in before:
        a = by_case.pop(b["case"], None)
        out.append(f"| {b['case']} | `{b['command'].replace('|', ' ')}` | {cell(b)} | {cell(a)} |")
    for a in by_case.values():
        out.append(f"| {a['case']} | `{a['command']}` | – | {cell(a)} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="checkout with a .venv")
    ap.add_argument("--work", type=Path, help="scratch directory (emptied)")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--table", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="print the markdown table")
    args = ap.parse_args()
    if args.table:
        print(table(*(json.loads(p.read_text()) for p in args.table)), end="")
        return 0
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    os.umask(0o022)
    r = Runner(args.root.resolve(), args.work.resolve())
    run_cases(r)
    args.json.write_text(json.dumps(r.rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
