"""Split ../shared/data/lgps-pbe into training and validation systems (every 10th frame -> validation).

Deterministic: the same frames land in the same split on every machine.
Usage: python student/make_split.py SRC_DIR OUT_DIR
"""
import sys
from pathlib import Path

import dpdata
import numpy as np


def main(src: str, out: str) -> None:
    out_dir = Path(out)
    for sysdir in sorted(Path(src).iterdir()):
        if not (sysdir / "type.raw").exists():
            continue
        system = dpdata.LabeledSystem(str(sysdir), fmt="deepmd/npy")
        idx = np.arange(len(system))
        valid = idx[idx % 10 == 9]
        train = idx[idx % 10 != 9]
        system.sub_system(train).to("deepmd/npy", str(out_dir / "train" / sysdir.name))
        system.sub_system(valid).to("deepmd/npy", str(out_dir / "valid" / sysdir.name))
        print(f"{sysdir.name}: {len(train)} train, {len(valid)} valid, {system.get_natoms()} atoms")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
