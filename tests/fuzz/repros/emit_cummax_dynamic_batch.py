"""Reproducer of a torch2keras fuzzing failure (seed 310, 3 op(s)).

typed_error at compile: EmissionError
emitting cumulative_extreme failed: ValueError: Exception encountered when calling TorchOp.call().
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x0, x1):
        v1 = torch.logcumsumexp(x1, 0)
        v2 = torch.cummax(x0, -3)[1]
        v3 = v2.permute(0, 2, 1, 3)
        return v3


INPUTS = [('x0', (2, 6, 4, 7), 'float32', 0), ('x1', (2,), 'float32', 0)]


def make_model():
    torch.manual_seed(310)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import batch_resized, check_reproducer

    check_reproducer(make_model(), make_inputs(310), batch_resized(make_inputs(1000313, batch=3), make_inputs(1000313), [True, False]),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes={'x0': {0: 'batch'}, 'x1': None})


if __name__ == "__main__":
    check_all()
