"""Control flow: ops owning regions (sub-graphs held in attributes of kind ``graph``).

``ir/regions.py`` states each op's region signatures and result types. Layout rule ``region``:
the layout pass stores operands and results as it sees fit (channels-last around branches of
convs, say) and pins each region's inputs and outputs to the same layouts. The references run
the regions with the IR interpreter (``ir/interpret.py``).
"""

from __future__ import annotations

import numpy as np

from ..interpret import run_graph
from ..regions import result_types
from .schema import define

FAMILY = "control"


def _region_results(op):
    def infer(types, a):
        return result_types(op, types, a)

    return infer


def _cond(pred, *operands, then_branch, else_branch):
    return tuple(run_graph(then_branch if bool(np.asarray(pred)) else else_branch, operands))


def _while_loop(*operands, cond_fn, body_fn, num_carried):
    carried, extra = list(operands[:num_carried]), list(operands[num_carried:])
    while bool(np.asarray(run_graph(cond_fn, carried + extra)[0])):
        carried = run_graph(body_fn, carried + extra)
    return tuple(carried)


def _scan(*operands, combine_fn, num_init, num_xs):
    carry = list(operands[:num_init])
    xs, extra = operands[num_init:num_init + num_xs], list(operands[num_init + num_xs:])
    ys: list[list[np.ndarray]] = []
    for i in range(xs[0].shape[0] if xs else 0):
        outs = run_graph(combine_fn, carry + [x[i] for x in xs] + extra)
        carry, row = outs[:num_init], outs[num_init:]
        ys.append(row)
    stacked = [np.stack([row[k] for row in ys]) for k in range(len(ys[0]))] if ys else []
    return tuple(carry + stacked)


def _map(*operands, body_fn, num_xs):
    xs, extra = operands[:num_xs], list(operands[num_xs:])
    rows = [run_graph(body_fn, [x[i] for x in xs] + extra) for i in range(xs[0].shape[0])]
    return tuple(np.stack([row[k] for row in rows]) for k in range(len(rows[0])))


_LOOP_NOTE = {"all": {"WHILE": "a loop (GRU/LSTM layer or a scan) stays on the CPU; for short fixed sequences "
                               "unroll it"}}

define("cond", FAMILY, ["pred", "*operands"], _region_results("cond"), "region",
       {"then_branch": ("graph",), "else_branch": ("graph",)}, num_outputs=None, reference=_cond, tflite=("IF",),
       doc="then_branch(*operands) if pred (a bool scalar) else else_branch(*operands)")
define("while_loop", FAMILY, ["*operands"], _region_results("while_loop"), "region",
       {"cond_fn": ("graph",), "body_fn": ("graph",), "num_carried": ("int",)}, num_outputs=None,
       reference=_while_loop, tflite=("WHILE",), delegate_notes=_LOOP_NOTE,
       doc="carried = body_fn(*carried, *extra) while cond_fn(*carried, *extra); the first num_carried operands "
           "are carried, the rest passed unchanged to every iteration")
define("scan", FAMILY, ["*operands"], _region_results("scan"), "region",
       {"combine_fn": ("graph",), "num_init": ("int",), "num_xs": ("int",)}, num_outputs=None, reference=_scan,
       tflite=("WHILE",), delegate_notes=_LOOP_NOTE,
       doc="carry, y[i] = combine_fn(*carry, *(x[i] for x in xs), *extra) over axis 0 of the xs; operands: "
           "num_init initial carries, num_xs scanned tensors, extra inputs; results: final carries, stacked ys")
define("map", FAMILY, ["*operands"], _region_results("map"), "region",
       {"body_fn": ("graph",), "num_xs": ("int",)}, num_outputs=None, reference=_map, tflite=("WHILE",),
       delegate_notes=_LOOP_NOTE,
       doc="y[i] = body_fn(*(x[i] for x in xs), *extra) over axis 0 of the first num_xs operands; results: the "
           "stacked ys")
