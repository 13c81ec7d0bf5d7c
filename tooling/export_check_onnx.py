"""Checks an ONNX file written by @bmc/export with the onnx project's own checker
(Debian python3-onnx), runs shape inference, and prints a summary.

Usage: /usr/bin/python3 tooling/export_check_onnx.py FILE.onnx [FILE.onnx ...]
Exit status 1 when a file fails the checker.
"""
import collections
import json
import sys

import onnx
from onnx import shape_inference


def dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField('dim_param') else d.dim_value)
    return out


def check(path):
    model = onnx.load(path)
    # full_check also runs strict shape inference over every node.
    onnx.checker.check_model(model, full_check=True)
    inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    params = sum(int(__import__('numpy').prod(t.dims)) for t in model.graph.initializer if t.data_type == 1)
    print(f'{path}: OK (onnx {onnx.__version__} checker, full_check=True; strict shape inference OK)')
    print(f'  ir_version {model.ir_version}, opset {[(o.domain or "ai.onnx", o.version) for o in model.opset_import]}, '
          f'producer {model.producer_name} {model.producer_version}')
    print(f'  inputs:  {[(i.name, dims(i)) for i in model.graph.input]}')
    print(f'  outputs: {[(o.name, dims(o)) for o in model.graph.output]}')
    print(f'  nodes {len(model.graph.node)}, initializers {len(model.graph.initializer)}, float params {params}')
    print(f'  ops: {dict(sorted(ops.items()))}')
    print(f'  value_info after inference: {len(inferred.graph.value_info)}')
    for p in model.metadata_props:
        v = p.value
        if p.key.startswith('bmc.') and p.key not in ('bmc.format', 'bmc.version'):
            json.loads(v)  # every bmc.* entry other than format/version is JSON
        print(f'  metadata {p.key} = {v if len(v) < 120 else v[:117] + "..."}')


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    failed = 0
    for path in paths:
        try:
            check(path)
        except Exception as e:  # report every file, then fail
            failed += 1
            print(f'{path}: FAILED: {type(e).__name__}: {e}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
