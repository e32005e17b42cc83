"""Emitters of the control-flow ops (``ir/ops/control.py``): each region becomes a subgraph of
the file, its nodes written by the same emitters.

* ``cond``: IF, reading the predicate and the operands; the branches are its then / else
  subgraphs.
* ``while_loop``: WHILE over the carried values and the extra operands; the condition subgraph
  is ``cond_fn``, the body ``body_fn`` returning the carried values then the extras unchanged
  (WHILE's body returns every loop variable).
* ``scan`` and ``map``: WHILE over a step counter, the carries, the stacked results (zeros at
  first), the scanned tensors and the extras. The body GATHERs row ``i`` of every scanned
  tensor, runs the region's nodes on them, writes each result row with DYNAMIC_UPDATE_SLICE and
  adds 1 to the counter; the condition is ``i < rows``.

Values inside a region are static, as everywhere in this backend.
"""

from __future__ import annotations

import numpy as np

from ...ir import Node
from ...ir.types import DTYPES
from ..context import Context, DirectExportError, emitter
from ..schema import fb

__all__ = ["counter_cond"]


def _pred(ctx: Context, node: Node) -> int:
    pred = ctx.cast(ctx.tensor(node.inputs[0]), np.bool_, "pred")
    return ctx.reshape(pred, [], "pred_scalar") if int(np.prod(ctx.shape(pred))) == 1 else pred


@emitter("cond")
def emit_cond(ctx: Context, node: Node) -> list[int]:
    scope = ctx.scope(node)
    then = ctx.subgraphs.region(ctx, node.regions["then_branch"], f"{scope}/then")
    otherwise = ctx.subgraphs.region(ctx, node.regions["else_branch"], f"{scope}/else")
    ctx.node = node
    options = fb.IfOptionsT()
    options.thenSubgraphIndex, options.elseSubgraphIndex = then, otherwise
    outs = [ctx.result(node, k) for k in range(len(node.outputs))]
    ctx.op("IF", [_pred(ctx, node), *[ctx.tensor(v) for v in node.inputs[1:]]], outs, options)
    return outs


def _while(ctx: Context, node: Node, loop_vars: list[int], cond: int, body: int, first: int, count: int) -> list[int]:
    """WHILE over ``loop_vars``: loop variables ``first`` .. ``first + count`` are ``node``'s
    results (in order), the others new tensors; returns those ``count`` results."""
    ctx.node = node
    options = fb.WhileOptionsT()
    options.condSubgraphIndex, options.bodySubgraphIndex = cond, body
    outs = [ctx.result(node, k - first) if first <= k < first + count
            else ctx.temp(ctx.shape(t), ctx.dtype(t), f"loop_var{k}") for k, t in enumerate(loop_vars)]
    ctx.op("WHILE", loop_vars, outs, options)
    return outs[first:first + count]


@emitter("while_loop")
def emit_while_loop(ctx: Context, node: Node) -> list[int]:
    scope = ctx.scope(node)
    carried = node.attrs["num_carried"]
    cond = ctx.subgraphs.region(ctx, node.regions["cond_fn"], f"{scope}/cond")
    body = ctx.subgraphs.region(ctx, node.regions["body_fn"], f"{scope}/body", passthrough=len(node.inputs) - carried)
    return _while(ctx, node, [ctx.tensor(v) for v in node.inputs], cond, body, 0, carried)


def counter_cond(ctx: Context, rows: int, name: str, others: list[int]) -> int:
    """A condition subgraph: loop variable 0 (an int32 counter) < ``rows``; the other loop
    variables (``others``: tensors of ``ctx``'s subgraph, for their types) unused."""
    sub, index = ctx.subgraphs.open(ctx, name)
    inputs = [sub.sub.tensor([], np.int32, f"{name}/i")]
    inputs += [sub.sub.tensor(ctx.shape(t), ctx.dtype(t), f"{name}/v{k}") for k, t in enumerate(others)]
    more = sub.sub.tensor([], np.bool_, f"{name}/more")
    sub.op("LESS", [inputs[0], sub.constant(np.asarray(rows, np.int32), f"{name}/rows")], [more])
    ctx.subgraphs.close(sub, inputs, [more])
    return index


def _rows_in(body: Context, i: int, xs: list[int], name: str) -> list[int]:
    """Row ``i`` of each scanned tensor (GATHER along axis 0 by the scalar counter)."""
    gather = fb.GatherOptionsT()
    gather.axis = 0
    rows = []
    for k, x in enumerate(xs):
        rows.append(body.sub.tensor(body.shape(x)[1:], body.dtype(x), f"{name}/x{k}_row"))
        body.op("GATHER", [x, i], [rows[-1]], gather)
    return rows


def _rows_out(body: Context, i: int, buffers: list[int], rows: list[int], name: str) -> list[int]:
    """Each buffer with row ``i`` replaced by the new row (DYNAMIC_UPDATE_SLICE at [i, 0, ...])."""
    written = []
    for k, (buf, row) in enumerate(zip(buffers, rows)):
        shape = body.shape(buf)
        row = body.reshape(row, [1, *shape[1:]], f"row{k}")
        start = body.sub.tensor([len(shape)], np.int32, f"{name}/start{k}")
        body.op("PAD", [body.reshape(i, [1], f"i{k}"), body.constant(np.asarray([[0, len(shape) - 1]], np.int32),
                                                                       f"{name}/pad{k}")], [start], fb.PadOptionsT())
        written.append(body.sub.tensor(shape, body.dtype(buf), f"{name}/rows{k}"))
        body.op("DYNAMIC_UPDATE_SLICE", [buf, row, start], [written[-1]])
    return written


def _row_loop(ctx: Context, node: Node, region_name: str, num_carry: int, num_xs: int) -> list[int]:
    """``scan`` (``num_carry`` carries) or ``map`` (none) as a WHILE (see the module docstring);
    returns the node's results: the final carries, then the stacked rows."""
    region = node.regions[region_name]
    if not num_xs or any(v.type.perm[0] != 0 for v in (*node.inputs[num_carry:num_carry + num_xs],
                                                        *node.outputs[num_carry:])):
        raise DirectExportError(node, "without scanned tensors, or over a value stored with its scanned axis moved, "
                                      "is not supported")
    operands = [ctx.tensor(v) for v in node.inputs]
    stacked = node.outputs[num_carry:]
    buffers = [ctx.constant(np.zeros([int(d) for d in v.type.physical_shape], DTYPES[v.type.dtype]),
                            ctx.local_name(f"rows{k}")) for k, v in enumerate(stacked)]
    loop_vars = [ctx.ints(0, "counter"), *operands[:num_carry], *buffers, *operands[num_carry:]]
    scope = ctx.scope(node)
    cond = counter_cond(ctx, ctx.shape(operands[num_carry])[0], f"{scope}/cond", loop_vars[1:])
    body, body_index = ctx.subgraphs.open(ctx, f"{scope}/body", region)
    inputs = [body.sub.tensor(ctx.shape(t), ctx.dtype(t), f"{scope}/body/v{k}") for k, t in enumerate(loop_vars)]
    i, carries = inputs[0], inputs[1:1 + num_carry]
    b_buffers, rest = inputs[1 + num_carry:1 + num_carry + len(buffers)], inputs[1 + num_carry + len(buffers):]
    region_inputs = [*carries, *_rows_in(body, i, rest[:num_xs], f"{scope}/body"), *rest[num_xs:]]
    if len(region_inputs) != len(region.inputs):
        raise DirectExportError(node, f"has {len(region.inputs)} region inputs, expected {len(region_inputs)}")
    body.tensors.update({v.id: t for v, t in zip(region.inputs, region_inputs)})
    outs = ctx.subgraphs.emit(body)
    next_i = body.sub.tensor([], np.int32, f"{scope}/body/next_i")
    body.op("ADD", [i, body.constant(np.asarray(1, np.int32), f"{scope}/body/one")], [next_i], fb.AddOptionsT())
    written = _rows_out(body, i, b_buffers, outs[num_carry:], f"{scope}/body")
    ctx.subgraphs.close(body, inputs, [next_i, *outs[:num_carry], *written, *rest])
    return _while(ctx, node, loop_vars, cond, body_index, 1, num_carry + len(stacked))


@emitter("scan")
def emit_scan(ctx: Context, node: Node) -> list[int]:
    return _row_loop(ctx, node, "combine_fn", node.attrs["num_init"], node.attrs["num_xs"])


@emitter("map")
def emit_map(ctx: Context, node: Node) -> list[int]:
    return _row_loop(ctx, node, "body_fn", 0, node.attrs["num_xs"])
