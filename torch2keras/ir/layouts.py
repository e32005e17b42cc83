"""Layout algebra: how permutes and reshapes act on physical layouts.

A layout ``L`` lists logical axes in physical order (see ``types.py``). An op is *free* in a
given (input layout, output layout) pair when the bytes it reads are already the bytes it
writes, in order, so that the backend emits no data movement (a reshape at most).
"""

from __future__ import annotations

from typing import Optional, Sequence

from .types import Layout, invert

__all__ = ["count_transposes", "moves_data", "permute_image", "physical_permute", "physical_transposes",
           "reshape_groups", "reshape_image", "reshape_is_free", "transpose_is_reshape"]


def permute_image(layout: Sequence[int], perm: Sequence[int]) -> Layout:
    """The output layout that makes ``permute(perm)`` free for an input stored in ``layout``."""
    pinv = invert(perm)
    return tuple(pinv[a] for a in layout)


def physical_permute(in_layout: Sequence[int], perm: Sequence[int], out_layout: Sequence[int]) -> Layout:
    """The physical transpose ``permute(perm)`` performs between the given layouts."""
    return tuple(list(in_layout).index(perm[a]) for a in out_layout)


def transpose_is_reshape(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """Whether transposing ``shape`` by ``perm`` keeps the order of the non-1 axes."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


def reshape_groups(in_shape: Sequence, out_shape: Sequence) -> Optional[list[tuple[list[int], list[int]]]]:
    """Pair the non-1 axes of both shapes into consecutive groups of equal size.

    Returns ``[(in_axes, out_axes), ...]`` in logical order, or None where they do not pair up.
    A symbolic dim forms a group of its own with the same symbolic dim on the other side (its
    size is unknown, so nothing else is known to match it).
    """
    ins = [a for a, d in enumerate(in_shape) if d != 1]
    outs = [a for a, d in enumerate(out_shape) if d != 1]
    groups, i, j = [], 0, 0
    while i < len(ins) or j < len(outs):
        if i >= len(ins) or j >= len(outs):
            return None
        gi, gj = [ins[i]], [outs[j]]
        pi, pj = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        if isinstance(pi, str) or isinstance(pj, str):
            if pi != pj:
                return None
            groups.append((gi, gj))
            continue
        while pi != pj:
            if (pi < pj and (i >= len(ins) or isinstance(in_shape[ins[i]], str))) or \
                    (pi > pj and (j >= len(outs) or isinstance(out_shape[outs[j]], str))):
                return None
            if pi < pj:
                gi.append(ins[i])
                pi *= in_shape[ins[i]]
                i += 1
            else:
                gj.append(outs[j])
                pj *= out_shape[outs[j]]
                j += 1
        groups.append((gi, gj))
    return groups


def _group_order(physical: Sequence[int], groups_axes: list[list[int]]) -> Optional[list[int]]:
    """Group indices in physical order, if each group's axes sit together and in order."""
    owner = {a: g for g, axes in enumerate(groups_axes) for a in axes}
    seq = [a for a in physical if a in owner]
    order, k = [], 0
    while k < len(seq):
        g = owner[seq[k]]
        axes = groups_axes[g]
        if seq[k:k + len(axes)] != axes:
            return None
        order.append(g)
        k += len(axes)
    return order


def reshape_is_free(in_shape, in_layout, out_shape, out_layout) -> bool:
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return tuple(in_layout) == tuple(range(len(in_shape))) and tuple(out_layout) == tuple(range(len(out_shape)))
    gin = _group_order(in_layout, [g[0] for g in groups])
    gout = _group_order(out_layout, [g[1] for g in groups])
    return gin is not None and gin == gout


def reshape_image(in_shape, in_layout, out_shape) -> Optional[Layout]:
    """The output layout that makes the reshape free for an input stored in ``in_layout``,
    or None when no layout does. Size-1 output axes follow their logical predecessor."""
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return tuple(range(len(out_shape))) if tuple(in_layout) == tuple(range(len(in_shape))) else None
    order = _group_order(in_layout, [g[0] for g in groups])
    if order is None:
        return None
    layout: list[int] = [a for g in order for a in groups[g][1]]
    for a in range(len(out_shape)):
        if out_shape[a] == 1:
            at = layout.index(a - 1) + 1 if a - 1 in layout else 0
            layout.insert(at, a)
    return tuple(layout)


def moves_data(node) -> bool:
    """Whether a ``relayout`` or ``permute`` node moves data: a physical transpose that is not a
    plain reshape (only non-1 axes count). Other ops never do."""
    src = node.inputs[0].type if node.inputs else None
    if node.op == "relayout":
        perm = node.attrs["perm"]
    elif node.op == "permute":
        perm = physical_permute(src.perm, node.attrs["perm"], node.output.type.perm)
    else:
        return False
    return not transpose_is_reshape(src.physical_shape, perm)


def physical_transposes(nodes) -> int:
    """How many of ``nodes`` move data (see ``moves_data``)."""
    return sum(1 for node in nodes if moves_data(node))


def count_transposes(graph) -> int:
    """Physical transposes the graph performs, inside control-flow regions too."""
    return physical_transposes(node for _, node in graph.walk())
