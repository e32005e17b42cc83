"""Reproducer of a torch2keras fuzzing failure (seed 120, 2 op(s)).

typed_error at compile: EmissionError
emitting gather failed: ValueError: Exception encountered when calling TorchOp.call().
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('c1_0', torch.argsort(torch.rand((3, 3, 2, 7)), dim=3))
        self.register_buffer('c2_0', torch.randint(0, 7, (2, 1, 2, 4)))

    def forward(self, x0):
        v1 = torch.scatter(x0, 3, self.c1_0, x0 * 2.0)
        v2 = torch.gather(v1, 3, self.c2_0)
        return v2


INPUTS = [('x0', (3, 3, 2, 7), 'float32', 0)]


def make_model():
    torch.manual_seed(120)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(120), make_inputs(1000123),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
