"""Reproducer of a torch2keras fuzzing failure (seed 309, 1 op(s)).

typed_error at compile: EmissionError
emitting conv failed: ValueError: `output_padding` must be strictly less than `strides` for all dimensions. At dimension 0, `output_padding` is 1 but `strides` is 1. Received: output_padding=(1, 1, 1), strides=(1, 1, 1)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m9 = nn.ConvTranspose3d(8, 7, 1, stride=1, padding=0, output_padding=1, groups=1, dilation=2, bias=True)

    def forward(self, x2):
        v9 = self.m9(x2)
        return v9


INPUTS = [('x2', (1, 8, 9, 7, 2), 'float32', 0)]


def make_model():
    torch.manual_seed(309)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(309), make_inputs(1000312),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
