"""Reproducer of a torch2keras fuzzing failure (seed 288, 1 op(s)).

untyped_exception at export_tflite: tensorflow.lite.python.convert_phase.ConverterError
'tf.Transpose' op x should be of the same rank with y, got x of rank 3, and y of rank 4
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m3 = nn.InstanceNorm1d(3, affine=True)
        nn.init.normal_(self.m3.weight, 1.0, 0.3)
        nn.init.normal_(self.m3.bias, 0.0, 0.3)

    def forward(self, x0):
        v3 = self.m3(x0)
        return v3


INPUTS = [('x0', (3, 8), 'float32', 0)]


def make_model():
    torch.manual_seed(288)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(288), make_inputs(1000291),
                     input_layouts=None, output_layouts=None,
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
