"""Move the uint8 Casts of an export made before issue 15 to the graph's edges, and prove nothing changed.

Exports made before then cast to uint8 before the generator's last Transpose (NCHW -> NHWC) and
transposed the style decoder's uint8 input before casting it to float; TensorRT's parser refuses both
(uint8 only at a graph's inputs and outputs). ``maskface export`` now emits the Transpose in float
(``networks.to_uint8_nhwc``, ``StyleDecoderGraph``); this rewrites an existing export the same way
where its checkpoint is gone (the bundled demo model):

    generator:     Cast(to=uint8) -> Transpose -> image    becomes    Transpose -> Cast(to=uint8) -> image
    style_decoder: image -> Transpose -> Cast(to=float)    becomes    image -> Cast(to=float) -> Transpose

A Cast and a Transpose commute exactly (the generator's values are already whole numbers in [0, 255]).
Before anything is written, the old and new graphs run on ONNX Runtime on the masks of ``--masks``,
random label maps and style codes, and random images: generator images and style codes must be
bitwise identical. Then the graphs and maskface.json's sha256/bytes are rewritten (atomically).

    python tools/move_uint8_casts.py maskface_rt/data/demo-model --masks examples/masks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST, graph_file, read_manifest, sha256_file
from maskface_rt.fileio import write_bytes_atomic, write_json_atomic
from maskface_rt.graph_contract import GRAPHS, IMAGE, LABELS, LATENT, STYLE, check_uint8_io
from maskface_rt.mask_io import discover_masks

#: graph -> (op of the first node of the pair, op of the second): the pair whose order is swapped.
PAIRS = {"generator": ("Cast", "Transpose"), "style_decoder": ("Transpose", "Cast")}


def swap_pair(model: onnx.ModelProto, first_op: str, second_op: str) -> onnx.ModelProto:
    """x -> first -> t -> second -> y becomes x -> second -> t -> first -> y, for the one such pair that
    touches a uint8 graph input or output. Intermediate tensors are named after the node that now makes
    them, as torch's exporter names them (node_permute -> permute), so the graph reads like a new export."""
    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph
    edges = {v.name for v in [*graph.input, *graph.output] if v.type.tensor_type.elem_type == onnx.TensorProto.UINT8}
    pairs = [
        (i, j)
        for i, a in enumerate(graph.node)
        for j, b in enumerate(graph.node)
        if a.op_type == first_op
        and b.op_type == second_op
        and list(b.input) == [a.output[0]]
        and {a.input[0], b.output[0]} & edges
    ]
    if len(pairs) != 1:
        raise MaskfaceError(None, f"expected one {first_op} -> {second_op} pair at a uint8 edge, found {len(pairs)}")
    i, j = pairs[0]
    first, second = onnx.NodeProto(), onnx.NodeProto()
    first.CopyFrom(graph.node[i])
    second.CopyFrom(graph.node[j])
    if sum(first.output[0] in n.input for n in graph.node) != 1:
        raise MaskfaceError(None, f"{first.name}'s output feeds more than {second.name}")
    x, t, y = first.input[0], first.output[0], second.output[0]
    first.input[0], first.output[0], second.input[0], second.output[0] = t, y, x, t
    graph.node[i].CopyFrom(second)
    graph.node[j].CopyFrom(first)
    outputs = {v.name for v in graph.output}
    rename = {name: node.name.removeprefix("node_") for name, node in ((t, second), (y, first)) if name not in outputs}
    taken = {n for node in graph.node for n in [*node.input, *node.output]} - set(rename)
    if taken & set(rename.values()):
        raise MaskfaceError(None, f"tensor names {sorted(taken & set(rename.values()))} are taken")
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    kept = [v for v in graph.value_info if v.name != t]
    for v in kept:
        v.name = rename.get(v.name, v.name)
    del graph.value_info[:]
    graph.value_info.extend(kept)
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(new).graph.value_info}
    graph.value_info.append(inferred[rename[t]])
    for output in graph.output:  # torch's note of the node that made the output
        for prop in output.metadata_props:
            if prop.key == "pkg.torch.onnx.original_node_name" and output.name == y:
                prop.value = first.name.removeprefix("node_")
    return new


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def compare(
    old: dict[str, onnx.ModelProto],
    new: dict[str, onnx.ModelProto],
    masks: Path,
    seed: int = 0,
    random_maps: int = 256,
    batch: int = 16,
) -> dict[str, int]:
    """Run old and new graphs side by side; every output must be bitwise identical. Counts of what was compared."""
    rng = np.random.default_rng(seed)
    size = old["generator"].graph.input[0].type.tensor_type.shape.dim[1].dim_value
    latent_dim = old["style_encoder"].graph.input[0].type.tensor_type.shape.dim[1].dim_value
    classes = int(
        json.loads(next(p.value for p in old["generator"].metadata_props if p.key == "maskface.config"))["num_classes"]
    )
    encoder = _session(old["style_encoder"])
    styles = encoder.run([STYLE], {LATENT: rng.standard_normal((64, latent_dim)).astype(np.float32)})[0]
    styles = np.concatenate([styles, rng.standard_normal((32, styles.shape[1])).astype(np.float32) * 3])
    files = [source.read(size=size) for source in discover_masks(masks)]
    blocky = rng.integers(0, classes, (random_maps, size // 8, size // 8), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    noise = rng.integers(0, classes, (random_maps, size, size), dtype=np.uint8)
    label_maps = np.concatenate([np.stack(files), blocky, noise])
    # every mask file with every style code; each random map with one
    pairs = [(m, k) for m in range(len(files)) for k in range(len(styles))]
    pairs += [(m, m % len(styles)) for m in range(len(files), len(label_maps))]
    counts = {
        "mask files": len(files),
        "random label maps": 2 * random_maps,
        "style codes": len(styles),
        "generator images": len(pairs),
    }
    gens = _session(old["generator"]), _session(new["generator"])
    decs = _session(old["style_decoder"]), _session(new["style_decoder"])
    faces = []
    for start in range(0, len(pairs), batch):
        m, k = np.array(pairs[start : start + batch]).T
        feeds = {LABELS: label_maps[m], STYLE: styles[k]}
        a, b = (s.run([IMAGE], feeds)[0] for s in gens)
        if a.tobytes() != b.tobytes():
            raise MaskfaceError(graph_file("generator"), f"rewritten graph differs from the old one at pair {start}")
        faces.append(a)
    images = np.concatenate([*faces, rng.integers(0, 256, (256, size, size, 3), dtype=np.uint8)])
    for start in range(0, len(images), batch):
        feeds = {IMAGE: images[start : start + batch]}
        a, b = (s.run([STYLE], feeds)[0] for s in decs)
        if a.tobytes() != b.tobytes():
            raise MaskfaceError(graph_file("style_decoder"), f"rewritten graph differs from the old one at {start}")
    counts["style decoder images"] = len(images)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="A maskface export folder to rewrite in place.")
    parser.add_argument("--masks", type=Path, default=Path("examples/masks"), help="Masks to compare on.")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.folder)
        old = {g: onnx.load(str(args.folder / graph_file(g))) for g in GRAPHS}
        new = dict(old)
        for graph, (first, second) in PAIRS.items():
            new[graph] = swap_pair(old[graph], first, second)
            onnx.checker.check_model(new[graph], full_check=True)
        for graph, model in new.items():
            check_uint8_io(model, graph_file(graph))
        counts = compare(old, new, args.masks)
        data = json.loads((args.folder / MANIFEST).read_text())
        for graph in PAIRS:
            path = args.folder / graph_file(graph)
            write_bytes_atomic(path, new[graph].SerializeToString(), overwrite=True)
            data["graphs"][graph].update(sha256=sha256_file(path), bytes=path.stat().st_size)
        write_json_atomic(args.folder / MANIFEST, data, overwrite=True)
    except MaskfaceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"{args.folder}: {manifest.config.img_size}px; bitwise identical on "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
    )
    for graph in PAIRS:
        print(f"  {graph_file(graph)}: sha256 {data['graphs'][graph]['sha256']}, {data['graphs'][graph]['bytes']} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
