"""Expected failures of the OpInfo suite, each with its reason.

``suite.py`` marks every listed case ``xfail(strict=True)``: a listed case that starts to pass
fails the run until it is removed from here. Keys: ``FIRST_SAMPLE`` and ``TFLITE`` by OpInfo
entry (``name.variant``), ``SWEEP`` by (entry, dtype name).
"""

from __future__ import annotations

_DATA_DEPENDENT = ("data-dependent output shape: the result's size depends on the input values, and "
                   "Keras/TFLite models here have static shapes (aten.nonzero and kin are unsupported)")
_ONE_HOT = ("one_hot with num_classes=-1 takes the class count from the data (max + 1): a data-dependent "
            "output shape")
_CTC = ("ctc_loss is not lowered: its forward pass is a dynamic-programming recursion over time and "
        "labels (a training loss)")

# whole entries whose default case (the first sample that can be a model) fails
FIRST_SAMPLE: dict[str, str] = {
    "argwhere": _DATA_DEPENDENT,
    "bincount": _DATA_DEPENDENT,
    "combinations": _DATA_DEPENDENT + " (torch decomposes it into masked_select)",
    "masked_select": _DATA_DEPENDENT,
    "nonzero": _DATA_DEPENDENT,
    "tensor_split": _DATA_DEPENDENT + " (split points given as a tensor)",
    "unique": _DATA_DEPENDENT,
    "unique_consecutive": _DATA_DEPENDENT,
    "nn.functional.one_hot": _ONE_HOT,
    "nn.functional.ctc_loss": _CTC,
}

_NO_INT64 = "TFLite has no int64 kernel for {} (the converter needs Select TF ops, which we do not enable)"

# entries of the TFLite subset (suite.tflite_subset) whose default case fails on TFLite
TFLITE: dict[str, str] = {
    "bitwise_right_shift": _NO_INT64.format("RIGHT_SHIFT"),
    "softmax.with_dtype": "the sample asks for a float64 result: TFLite has no float64 SOFTMAX",
}

_REPEATS_TENSOR = ("repeat_interleave with the repeats given as a tensor: torch.export treats the output size "
                   "as data-dependent (scalar repeats convert)")
_ALL = ("float32", "int64", "int32", "bool")

# (entry, dtype) of the slow sweep where some samples fail (benchmarks/op_coverage.py lists which)
SWEEP: dict[tuple[str, str], str] = {
    **{(entry, dtype): FIRST_SAMPLE[entry] for entry in ("argwhere", "combinations", "masked_select", "nonzero",
                                                         "tensor_split", "unique", "unique_consecutive")
       for dtype in _ALL},
    ("bincount", "int64"): _DATA_DEPENDENT,
    ("bincount", "int32"): _DATA_DEPENDENT,
    ("nn.functional.one_hot", "int64"): _ONE_HOT,
    ("nn.functional.ctc_loss", "float32"): _CTC,
    **{("repeat_interleave", dtype): _REPEATS_TENSOR for dtype in _ALL},
}
