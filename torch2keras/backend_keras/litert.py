"""LiteRT interpreters of ``.tflite`` files: the one factory the runners and the file probes use."""

from __future__ import annotations

from typing import Optional

__all__ = ["interpreter"]


def interpreter(path: str, delegates: bool = True, num_threads: Optional[int] = None,
                preserve_all_tensors: bool = False):
    """A LiteRT interpreter of ``path`` (with LiteRT's default XNNPACK delegate unless
    ``delegates=False``; ``preserve_all_tensors`` keeps every intermediate tensor readable)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {"experimental_preserve_all_tensors": True} if preserve_all_tensors else {}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if num_threads:
        kwargs["num_threads"] = num_threads
    return Interpreter(model_path=str(path), **kwargs)
