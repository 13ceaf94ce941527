"""Join the lcurve.out of consecutive training stages into one curve with a running step count.

A stage resumed from a checkpoint (`dp train --restart`) appends to its lcurve.out the steps
it re-ran since that checkpoint; the later rows replace the earlier ones.
"""
import sys


def stage_rows(path: str) -> list[list[str]]:
    rows: dict[int, list[str]] = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split()
        step = int(fields[0])
        for later in [s for s in rows if s >= step]:  # a resumed run starts again below them
            del rows[later]
        rows[step] = fields
    return [rows[s] for s in sorted(rows)]


def main(out: str, stage_dirs: list[str]) -> None:
    header = open(f"{stage_dirs[0]}/lcurve.out").readline().rstrip("\n")
    lines, offset = [header], 0
    for d in stage_dirs:
        last = offset  # each stage continues the step count where the previous one ended
        for fields in stage_rows(f"{d}/lcurve.out"):
            last = int(fields[0]) + offset
            lines.append("  ".join([str(last)] + fields[1:]))
        offset = last
    open(out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
