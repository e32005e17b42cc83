"""Reproducer of a torch2keras fuzzing failure (seed 189, 6 op(s)).

misreported at compile: 
every output within tolerance, yet the report names a first mismatch: aten.slice_scatter.default max |err| 3.36e+15 > 3.36e+11
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m1 = nn.Embedding(5, 8)
        self.m2 = nn.Embedding(4, 1)

    def forward(self, x0, x1, x2):
        v1 = self.m1(x1)
        v2 = self.m2(x2)
        v3 = F.pad(v1, (2, 6), mode='circular')
        v4 = F.scaled_dot_product_attention(v3, v3, v3 * 0.5, is_causal=True)
        v5 = F.pad(x0, (1, 2, 1, 1, 2, 0), mode='constant', value=0.5)
        v6 = x0 <= 2.0
        return (v5, v4, v6)


INPUTS = [('x0', (2, 4, 7, 9), 'float32', 0), ('x1', (1, 6), 'int64', 5), ('x2', (1, 6), 'int64', 4)]


def make_model():
    torch.manual_seed(189)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    return random_inputs(INPUTS, seed, batch)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import check_reproducer

    check_reproducer(make_model(), make_inputs(189), make_inputs(1000192),
                     input_layouts={'x0': 'channels_last'}, output_layouts=['channels_last', None, None],
                     dynamic_shapes=None)


if __name__ == "__main__":
    check_all()
