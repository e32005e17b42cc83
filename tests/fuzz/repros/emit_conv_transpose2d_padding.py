"""Reproducer of a torch2keras fuzzing failure (seed 105, 1 op(s)).

typed_error at compile: EmissionError
emitting conv gave shape (2, 12, 10, 8), expected (2, 11, 9, 8) at module 'm1' (ConvTranspose2d), <fuzz model 105>:13
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m1 = nn.ConvTranspose2d(1, 8, 1, stride=2, padding=1, output_padding=0, groups=1, dilation=1, bias=True)

    def forward(self, x0):
        v1 = self.m1(x0)
        return v1


INPUTS = [('x0', (2, 1, 7, 6), 'float32', 0)]


def make_model():
    torch.manual_seed(105)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(105), make_inputs(1000108),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
