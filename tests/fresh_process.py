"""Test-only helper: run saved ``.keras`` files in a new Python process.

A user loads a saved model without torch and without the Python session that converted it.
``run_saved`` does exactly that: a fresh interpreter loads each file with
``torch2keras.load_model`` (``safe_mode=True``), calls it on the given feeds in order (so state
carries from call to call) and hands the outputs back. With ``forbid_torch`` the child fails
when loading or running the model imported torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: torch2keras imports

_SCRIPT = """
import json, sys, numpy as np
import keras, torch2keras
jobs, backend, forbid_torch = json.loads(sys.argv[1])
assert keras.backend.backend() == backend, keras.backend.backend()
for job in jobs:
    model = torch2keras.load_model(job["model"])
    outs = {}
    for call, feed_path in enumerate(job["feeds"]):
        out = model(dict(np.load(feed_path)), training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        for i, o in enumerate(out):
            outs[f"{call}_{i}"] = np.asarray(o)
    np.savez(job["out"], **outs)
if forbid_torch:
    assert "torch" not in sys.modules, "loading or running a saved model imported torch"
"""


def run_saved(jobs: dict[str, tuple[str, list[dict[str, np.ndarray]]]], tmp_path, *,
              backend: str = "tensorflow", forbid_torch: bool = True, timeout: int = 600
              ) -> dict[str, list[list[np.ndarray]]]:
    """``{name: (keras_path, [feed per call])}`` -> ``{name: [[outputs of call 0], ...]}``."""
    spec = []
    for name, (path, feeds) in jobs.items():
        feed_paths = []
        for call, feed in enumerate(feeds):
            feed_paths.append(str(tmp_path / f"{name}_feed{call}.npz"))
            np.savez(feed_paths[-1], **feed)
        spec.append({"model": str(path), "feeds": feed_paths, "out": str(tmp_path / f"{name}_out.npz")})
    # only the checkout on the path: folders earlier tests put on sys.path (a user's copy.py...)
    # must not shadow modules in the child
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=backend, PYTHONPATH=_CHECKOUT)
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps([spec, backend, forbid_torch])],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {}
    for name, job in zip(jobs, spec):
        saved = np.load(job["out"])
        calls = len(jobs[name][1])
        results[name] = [[saved[key] for key in sorted((k for k in saved.files if k.startswith(f"{call}_")),
                                                       key=lambda k: int(k.split("_")[1]))]
                         for call in range(calls)]
    return results
