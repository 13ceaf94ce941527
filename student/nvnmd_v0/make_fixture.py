"""Copy the small result files of a `dp train-nvnmd` run into a test fixture folder.

    python make_fixture.py NAME WORKDIR DEST [--shared ../shared]

Keeps what the nvnmd-v0 tests need: nvnmd_qnn/{config,weight}.npy (QNN model),
nvnmd_cnn/map.npy (tables the QNN uses), nvnmd_qnn/frozen_model.pb (deepmd-kit's QNN graph,
the reference) and nvnmd_qnn/model.pb (the wrapped board image), plus a few labelled-free
frames (coordinates, cells, types in the model's type map) in frames.npz.
"""

import argparse
import shutil
from pathlib import Path

import numpy as np

FILES = ["nvnmd_qnn/config.npy", "nvnmd_qnn/weight.npy", "nvnmd_qnn/frozen_model.pb", "nvnmd_qnn/model.pb",
         "nvnmd_cnn/map.npy"]
FRAMES = {  # name -> [(system under shared/data, frame indices)]
    "gete": [("gete-nvnmd", [0, 1])],
    "lgps": [("lgps-pbe/LiGePS-iter.000000-data.000", [0, 1]), ("lgps-pbe/LiGePS-iter.000004-data.004", [0])],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(FRAMES))
    ap.add_argument("work")
    ap.add_argument("dest")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[3] / "shared"))
    a = ap.parse_args()
    work, dest = Path(a.work), Path(a.dest)
    for rel in FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / rel, dest / rel)
    import json

    type_map = json.loads((work / "input.json").read_text())["nvnmd"]["type_map"]
    out, k = {}, 0
    for system, idx in FRAMES[a.name]:
        root = Path(a.shared) / "data" / system
        names = (root / "type_map.raw").read_text().split()
        types = np.array([type_map.index(names[t]) for t in np.loadtxt(root / "type.raw", dtype=int)])
        for i in idx:
            out[f"coord{k}"] = np.load(root / "set.000" / "coord.npy")[i]
            out[f"box{k}"] = np.load(root / "set.000" / "box.npy")[i]
            out[f"types{k}"] = types
            k += 1
    np.savez_compressed(dest / "frames.npz", type_map=np.array(type_map), **out)
    print(f"fixture {a.name}: {dest}")


if __name__ == "__main__":
    main()
