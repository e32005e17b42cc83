"""Reproducer of a torch2keras fuzzing failure (seed 378, 1 op(s)).

typed_error at compile: LoweringError
lowering aten.diagonal.default failed: UFuncTypeError: ufunc 'multiply' did not contain a loop with signature matching types (dtype('<U21'), dtype('<U21')) -> None
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x0):
        v1 = torch.diagonal(x0, 0, 2, 3)
        return v1


INPUTS = [('x0', (2, 2, 6, 1), 'float32', 0)]


def make_model():
    torch.manual_seed(378)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(378), make_inputs(1000381, batch=3),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes={'x0': {0: 'batch'}})


if __name__ == "__main__":
    check_all()
