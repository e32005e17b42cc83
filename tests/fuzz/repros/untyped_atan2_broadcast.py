"""Reproducer of a torch2keras fuzzing failure (seed 23, 1 op(s)).

untyped_exception at export_tflite: tensorflow.lite.python.convert_phase.ConverterError
'tfl.atan2' op requires the same type for all operands and results
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('c1_0', torch.randn((1, 2, 7)))

    def forward(self, x0):
        v1 = torch.atan2(x0, torch.as_tensor(self.c1_0))
        return v1


INPUTS = [('x0', (3, 2, 7), 'float32', 0)]


def make_model():
    torch.manual_seed(23)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(23), make_inputs(1000026),
                     input_layouts={'x0': 'channels_last'}, output_layouts=['channels_last'],
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
