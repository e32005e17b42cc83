"""Reproducer of a torch2keras fuzzing failure (seed 336, 1 op(s)).

typed_error at compile: EmissionError
emitting linear failed: ValueError: Input 0 with name 'None' of layer 'linear' is incompatible with the layer: expected min_ndim=2, found ndim=1. Full shape received: (3,)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m2 = nn.Linear(3, 8, bias=True)

    def forward(self, x0):
        v2 = self.m2(x0)
        return v2


INPUTS = [('x0', (3,), 'float32', 0)]


def make_model():
    torch.manual_seed(336)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(336), make_inputs(1000339),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
