"""Framework-free IR: typed values, op schemas, graphs, printer and verifier (numpy, networkx, attrs only)."""

from .errors import (EmissionError, ExportError, LoweringError, NumericalMismatchError, PassError, Torch2KerasError,
                     UnsupportedOpError, VerificationError)
from .graph import Graph, Node, SourceLoc, Value
from .ops import SCHEMAS, OpSchema, schema
from .printer import graph_to_json, print_graph
from .types import TensorType, channels_last, compose, invert
from .verifier import verify

__all__ = [
    "EmissionError", "ExportError", "Graph", "LoweringError", "Node", "NumericalMismatchError", "OpSchema", "PassError",
    "SCHEMAS", "SourceLoc",
    "TensorType", "Torch2KerasError", "UnsupportedOpError", "Value", "VerificationError", "channels_last",
    "compose", "graph_to_json", "invert", "print_graph", "schema", "verify",
]
