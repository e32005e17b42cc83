"""Layout assignment over the whole graph, optimal for a stated cost model.

Every op keeps its PyTorch-logical meaning; the pass chooses the *physical* layout of every value
(``TensorType.layout``) and inserts ``relayout`` nodes (physical transposes) where a consumer
needs a value stored differently.

  ir/layout_rules.py   per layout class: the options an op offers, its legality (the verifier)
  cost.py              the cost model and its minimum cut (``mincut.py``), with statistics
  rewrite.py           applying a labelling: layouts on values, shared relayouts
  driver.py            the ``AssignLayout`` pass: rules -> problem -> solve -> rewrite -> regions
"""

from .cost import CONVERSION_OVERHEAD, NOMINAL_TRIPS, LayoutStats, region_runs
from .driver import AssignLayout, requested_layout
from .rewrite import convert_layout, relayout_perm

__all__ = ["AssignLayout", "CONVERSION_OVERHEAD", "LayoutStats", "NOMINAL_TRIPS", "convert_layout", "region_runs",
           "relayout_perm", "requested_layout"]
