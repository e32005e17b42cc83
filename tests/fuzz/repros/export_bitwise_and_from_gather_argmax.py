"""Reproducer of a torch2keras fuzzing failure (seed 38, 1 op(s)).

typed_error at export_tflite: ExportError
TFLite export: 1 TensorFlow op(s) have no TFLite builtin kernel:
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
        v3 = torch.gather(x0, 0, torch.argmax(x0, 0, keepdim=True))
        return v3


INPUTS = [('x0', (2, 6, 5), 'float32', 0)]


def make_model():
    torch.manual_seed(38)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(38), make_inputs(1000041),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
