"""`nvnmd quantize` (student -> nvq1 image, report, memory files) and `nvnmd test` (like dp test)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nvnmd.errors import NvnmdError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="quantize a deepmd-kit se_e2_a student into an nvq1 board image")
    p.add_argument("student", nargs="?", help="student model (.pb/.dp/.pth); not with --from-nvnmd")
    p.add_argument("-o", "--output", required=True, help="image file to write (.nvq)")
    p.add_argument("--calib", help="calibration frames (deepmd/npy dir(s) or anything dpdata reads); "
                                   "default: the shipped LGPS frames")
    p.add_argument("--calib-fmt", help="dpdata format of --calib when it cannot be guessed")
    p.add_argument("--report", metavar="DIR", help="write report.txt/report.json/parity.png here")
    p.add_argument("--emit-mem", metavar="DIR", help="write one $readmemh file per board memory here")
    p.add_argument("--from-nvnmd", metavar="DIR", help="import a deepmd-kit NVNMD model directory instead")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow reading the pickled .npy files of --from-nvnmd (only for files you trust)")
    p.set_defaults(func=cmd_quantize)

    t = sub.add_parser("test", help="accuracy of an image on labelled frames, in the manner of dp test")
    t.add_argument("model", help="board image (.nvq)")
    t.add_argument("-s", "--system", required=True, help="labelled frames (deepmd/npy or anything dpdata reads)")
    t.add_argument("--fmt", help="dpdata format of --system when it cannot be guessed")
    t.add_argument("--reference", help="float student to compare with (deepmd-kit DeepPot)")
    t.add_argument("--json", help="write the results as JSON here")
    t.set_defaults(func=cmd_test)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work is done (a traceback after minutes of
    calibration helps nobody)."""
    from nvnmd.outputs import check_output_dir, check_output_file

    if Path(args.output).is_dir():
        raise NvnmdError(f"-o {args.output}: is a directory; give the image file to write")
    check_output_file(args.output, "-o")
    for opt, value in (("--emit-mem", args.emit_mem), ("--report", args.report)):
        if value:
            check_output_dir(value, opt)


def cmd_quantize(args: argparse.Namespace) -> int:
    from nvnmd.image import Image

    _check_outputs(args)
    if args.from_nvnmd:
        if args.student:
            raise NvnmdError("give either a student model or --from-nvnmd DIR, not both")
        if args.emit_mem:
            raise NvnmdError("--emit-mem writes nvq1 board memories; an nvnmd-v0 board loads deepmd-kit's "
                             "nvnmd_qnn/model.pb, which --from-nvnmd checks against the import")
        from nvnmd.sim.nvnmd_v0.importer import import_nvnmd

        image = import_nvnmd(args.from_nvnmd, trust_pickle=bool(args.trust_pickle))
        image.write(args.output)
        print(f"wrote {args.output} (profile {image.profile}, sha256 {image.digest()[:16]})")
        if args.emit_mem:
            _emit(image, args.emit_mem)
        return 0
    if args.trust_pickle:
        raise NvnmdError("--trust-pickle only applies to --from-nvnmd")
    if not args.student:
        raise NvnmdError("a student model is required (or --from-nvnmd DIR)")
    from nvnmd.quantize.build import check_limits, quantize
    from nvnmd.quantize.data import default_frames_path, load_frames
    from nvnmd.student import load_student

    from nvnmd.student import model_sha256

    student = load_student(args.student)
    check_limits(student)  # a model the board cannot hold is refused before any frame is read
    frames = load_frames(args.calib or default_frames_path(), student.type_map, fmt=args.calib_fmt)
    model, info = quantize(student, frames)
    info["source"] = str(args.student)
    info["calib"] = str(args.calib or "nvnmd/data/frames")
    model.meta_extra.update({"source": str(args.student), "calibration": {"frames": len(frames), "data": info["calib"]},
                             "model_sha256": model_sha256(args.student)})
    image = model.to_image()
    from nvnmd.backends.sim import SimBackend
    from nvnmd.quantize.evaluate import compare, image_against_float

    # every frame when a report is asked for, else a sample: the image is checked before it is written
    checked = frames if args.report else [frames[i] for i in _spread(len(frames), 16)]
    pred, stats, float_pred, vs_float = image_against_float(SimBackend(Image.from_bytes(image.to_bytes())), args.student,
                                                            checked, student.type_map)
    image.write(args.output)
    print(f"wrote {args.output}: {Path(args.output).stat().st_size} bytes, profile nvq1, "
          f"{len(frames)} calibration frames, sha256 {image.digest()[:16]}")
    if args.emit_mem:
        _emit(image, args.emit_mem)
    if args.report:
        from nvnmd.quantize.report import write_report

        results = [vs_float, compare(pred, "labels", frames, "labels"),
                   compare(float_pred, "labels", frames, "student vs labels")]
        out = write_report(args.report, image=image, info=info, results=results, pred=pred, float_pred=float_pred,
                           frames=frames, stats=stats)
        print((out / "report.txt").read_text(), end="")
    return 0


def _spread(n: int, most: int) -> list[int]:
    """Up to `most` indices spread evenly over range(n)."""
    import numpy as np

    return sorted(set(np.linspace(0, n - 1, min(most, n)).round().astype(int).tolist()))


def _emit(image, out_dir) -> None:
    from nvnmd.quantize.mem import emit_mem

    files = emit_mem(image, out_dir)
    print(f"wrote {len(files)} memory files to {out_dir}")


def cmd_test(args: argparse.Namespace) -> int:
    from nvnmd.backends.sim import SimBackend
    from nvnmd.quantize.data import load_frames
    from nvnmd.quantize.evaluate import compare, format_table, run_deeppot, run_image

    from nvnmd.outputs import check_output_file

    path = Path(args.model)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if args.json:
        check_output_file(args.json, "--json")
    backend = SimBackend(path)
    frames = load_frames(args.system, backend.type_map, fmt=args.fmt)
    pred, stats = run_image(backend, frames)
    results = [compare(pred, "labels", frames, "labels")]
    if args.reference:
        float_pred = run_deeppot(args.reference, frames, backend.type_map)
        results.append(compare(pred, float_pred, frames, "float student"))
        results.append(compare(float_pred, "labels", frames, "student vs labels"))
    print(f"{path.name}: {len(frames)} frames, {sum(f.natoms for f in frames)} atoms")
    print(format_table(results))
    print(f"saturations {stats['saturations']}, neighbour-overflow atoms {stats['overflow_atoms']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(path), "system": str(args.system), "results": results,
                                               "datapath": stats}, indent=1))
    if stats["overflow_atoms"]:
        print("warning: some atoms had more neighbours than sel; their results are not the model's", file=sys.stderr)
    return 0

