"""Grow a trained se_e2_a student into a wider one that computes exactly the same energies.

The wider network then continues training from the narrow one's function instead of from
scratch (a function-preserving "net2net" growth), which is what makes a wider student
affordable on a CPU. Three growths, each within the board's limits (M1 <= 64, M2 <= 16,
descriptor M1*M2 <= 256, fitting width <= 256):

--axis-neuron M2'   more axis filters: descriptor D[m, a] gains the columns a >= M2; the
                    first fitting layer reads them through zero weights.
--double-embedding  every embedding layer twice as wide by replication (h -> [h, h]), which
                    deepmd-kit's doubling shortcut (y = [x, x] + tanh(x W + b)) carries through
                    when each copy gets half of W's rows; D[m, a] for m >= M1 repeats
                    D[m - M1, a] and is read through zero weights.
--fitting-width N   wider hidden fitting layers: the new units get random incoming weights
                    (so they carry a signal and train) and zero outgoing weights into the old
                    units and the energy, so the energy is unchanged.

Works on deepmd-kit's serialized model dict (deepmd-kit's TF serialization both ways), and
checks the grown model against the original with DeepPot before writing it.
Usage: python student/widen.py IN.pb OUT.pb (--axis-neuron N | --double-embedding | --fitting-width N) [--check DATA]
"""
import argparse
import copy
import os
import sys
from pathlib import Path

import numpy as np


def _first_fitting_layers(model: dict):
    for net in model["fitting"]["nets"]["networks"]:
        yield net["layers"][0]


def _set_descriptor_width(model: dict, m1: int, m2: int) -> None:
    model["fitting"]["dim_descrpt"] = m1 * m2
    for net in model["fitting"]["nets"]["networks"]:
        net["in_dim"] = m1 * m2
        # TF fits never use a timestep on layer 0; the serialization reports one only when
        # the layer happens to be square, so a grown (non-square) layer must not carry it
        layer0 = net["layers"][0]
        layer0["use_timestep"] = False
        layer0["@variables"]["idt"] = None


def widen_axis(data: dict, m2_new: int) -> dict:
    data = copy.deepcopy(data)
    model = data["model"]
    desc = model["descriptor"]
    m1, m2 = desc["neuron"][-1], desc["axis_neuron"]
    if not m2 < m2_new <= m1:
        sys.exit(f"widen.py: axis_neuron must grow from {m2} to at most M1 = {m1}")
    for layer in _first_fitting_layers(model):
        w = layer["@variables"]["w"]
        grown = np.zeros((m1, m2_new, w.shape[1]))
        grown[:, :m2, :] = w.reshape(m1, m2, -1)  # descriptor index m * M2 + a (deepmd-kit's order)
        layer["@variables"]["w"] = grown.reshape(m1 * m2_new, -1)
    desc["axis_neuron"] = m2_new
    data["model_def_script"]["descriptor"]["axis_neuron"] = m2_new
    _set_descriptor_width(model, m1, m2_new)
    return data


def double_embedding(data: dict) -> dict:
    data = copy.deepcopy(data)
    model = data["model"]
    desc = model["descriptor"]
    m1, m2 = desc["neuron"][-1], desc["axis_neuron"]
    for net in desc["embeddings"]["networks"]:
        for k, layer in enumerate(net["layers"]):
            var = layer["@variables"]
            w, b = var["w"], var["b"]
            if k > 0 and w.shape[1] != 2 * w.shape[0]:
                sys.exit("widen.py: --double-embedding needs every embedding layer after the first to double its width")
            if k == 0:
                var["w"] = np.concatenate([w, w], axis=1)  # h -> [h, h]
            else:
                half = np.concatenate([w, w], axis=1) / 2  # [h, h] @ [[W/2, W/2], [W/2, W/2]] = [hW, hW]
                var["w"] = np.concatenate([half, half], axis=0)
            var["b"] = np.concatenate([b, b])
            if var.get("idt") is not None:
                var["idt"] = np.concatenate([var["idt"], var["idt"]])
        net["neuron"] = [2 * n for n in net["neuron"]]
    for layer in _first_fitting_layers(model):
        w = layer["@variables"]["w"]
        layer["@variables"]["w"] = np.concatenate([w, np.zeros_like(w)], axis=0)  # rows m * M2 + a, m >= M1
    desc["neuron"] = [2 * n for n in desc["neuron"]]
    data["model_def_script"]["descriptor"]["neuron"] = list(desc["neuron"])
    _set_descriptor_width(model, 2 * m1, m2)
    return data


def widen_fitting(data: dict, width: int, seed: int = 20261202) -> dict:
    data = copy.deepcopy(data)
    rng = np.random.default_rng(seed)
    fitting = data["model"]["fitting"]
    old = fitting["neuron"]
    if len(set(old)) != 1 or not old[0] < width <= 256:
        sys.exit(f"widen.py: fitting layers {old} must share one width below the new {width} (board limit 256)")
    for net in fitting["nets"]["networks"]:
        *hidden, out = net["layers"]
        for k, layer in enumerate(hidden):
            var = layer["@variables"]
            w = var["w"]
            n_in = w.shape[0] if k == 0 else width
            grown = np.zeros((n_in, width))
            grown[: w.shape[0], : w.shape[1]] = w  # new inputs -> old units stay zero
            grown[:, w.shape[1]:] = rng.normal(0, 1 / np.sqrt(n_in + width), (n_in, width - w.shape[1]))
            var["w"] = grown
            var["b"] = np.concatenate([var["b"], rng.normal(0, 1, width - w.shape[1])])
            if var.get("idt") is not None:  # deepmd-kit's timestep init: N(0.1, 0.001)
                var["idt"] = np.concatenate([var["idt"], rng.normal(0.1, 0.001, width - w.shape[1])])
        w = out["@variables"]["w"]
        out["@variables"]["w"] = np.concatenate([w, np.zeros((width - w.shape[0], w.shape[1]))])
        net["neuron"] = [width] * len(hidden)
    fitting["neuron"] = [width] * len(old)
    data["model_def_script"]["fitting_net"]["neuron"] = list(fitting["neuron"])
    return data


def write_trainable(data: dict, pb: str) -> None:
    """Write a serialized model as a frozen .pb that `dp train --init-frz-model` accepts: that
    reads a `model_type` node which `dp freeze` writes and deepmd-kit's deserialization does not."""
    from deepmd.tf.env import tf
    from deepmd.tf.utils.serialization import deserialize_to_file

    deserialize_to_file(pb, data)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(pb).read_bytes())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        tf.constant("original_model", name="model_type", dtype=tf.string)
        Path(pb).write_bytes(graph.as_graph_def().SerializeToString())


def max_energy_difference(a: str, b: str, data_dir: str) -> float:
    """Largest |E_a - E_b| in eV over the first frames of every system under DATA_DIR."""
    import dpdata
    from deepmd.infer import DeepPot

    pa, pb, worst = DeepPot(a), DeepPot(b), 0.0
    for sysdir in sorted(p.parent for p in Path(data_dir).rglob("type.raw")):
        s = dpdata.LabeledSystem(str(sysdir), fmt="deepmd/npy")[:2]
        args = (s["coords"].reshape(len(s), -1), s["cells"].reshape(len(s), -1), s["atom_types"])
        worst = max(worst, float(np.abs(pa.eval(*args)[0] - pb.eval(*args)[0]).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_in")
    ap.add_argument("model_out")
    grow = ap.add_mutually_exclusive_group(required=True)
    grow.add_argument("--axis-neuron", type=int)
    grow.add_argument("--double-embedding", action="store_true")
    grow.add_argument("--fitting-width", type=int)
    ap.add_argument("--check", metavar="DATA", help="deepmd/npy tree: refuse unless the grown model reproduces the energies")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from deepmd.tf.utils.serialization import serialize_from_file

    data = serialize_from_file(args.model_in)
    if args.axis_neuron:
        data = widen_axis(data, args.axis_neuron)
    elif args.fitting_width:
        data = widen_fitting(data, args.fitting_width)
    else:
        data = double_embedding(data)
    tmp = Path(args.model_out).with_suffix(".partial.pb")  # renamed into place only once checked
    write_trainable(data, str(tmp))
    if args.check:
        diff = max_energy_difference(args.model_in, str(tmp), args.check)
        print(f"grown model reproduces the original: max |dE| = {diff:.2e} eV")
        if diff > 1e-8:
            tmp.unlink()
            sys.exit(f"widen.py: the grown model differs from the original by {diff:.2e} eV; not written")
    tmp.replace(args.model_out)


if __name__ == "__main__":
    main()
