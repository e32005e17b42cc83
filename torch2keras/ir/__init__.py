"""Framework-free IR: typed values, op schemas, graphs, printer, parser and verifier (numpy, networkx, attrs only)."""

from .errors import (EmissionError, ExportError, LoweringError, NumericalMismatchError, PassError, Torch2KerasError,
                     UnsupportedOpError, VerificationError)
from .graph import Graph, Node, SourceLoc, Value
from .ops import SCHEMAS, OpSchema, schema
from .elided import ElidedArray, ElidedWeightsError
from .parser import IRSyntaxError, parse
from .printer import graph_to_json, print_graph
from .storage import load_ir, save_ir
from .types import TensorType, channels_last, compose, invert
from .verifier import verify

__all__ = [
    "ElidedArray", "ElidedWeightsError", "EmissionError", "ExportError", "Graph", "IRSyntaxError", "LoweringError",
    "Node", "NumericalMismatchError", "OpSchema", "PassError", "SCHEMAS", "SourceLoc",
    "TensorType", "Torch2KerasError", "UnsupportedOpError", "Value", "VerificationError", "channels_last",
    "compose", "graph_to_json", "invert", "load_ir", "parse", "print_graph", "save_ir", "schema", "verify",
]
