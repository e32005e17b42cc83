"""The torch2keras command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch

from torch2keras.cli import main

MODEL_FILE = os.path.join(os.path.dirname(__file__), "models.py")


def _essentials():
    torch.manual_seed(0)
    from models import NobucoEssentials

    return NobucoEssentials()


def test_convert_writes_files_and_report(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    model = _essentials()
    torch.save(model.state_dict(), weights)
    out = tmp_path / "m.tflite"
    report = tmp_path / "r.json"
    code = main(["convert", f"{MODEL_FILE}:NobucoEssentials", "--input-shape", "1,3,32,32", "--weights",
                 str(weights), "-o", str(out), "-o", str(tmp_path / "m.keras"), "--channels-last",
                 "--dump-ir", str(tmp_path / "ir"), "--report-json", str(report)])
    assert code == 0
    printed = capsys.readouterr()
    assert "max |err|" in printed.out and "TFLite:" in printed.out and f"wrote {out}" in printed.out
    assert "capture" in printed.err  # progress lines
    data = json.loads(report.read_text())
    assert data["ok"] and data["tflite"]["transposes"] == 0 and data["max_abs_error"] < 1e-4
    assert (tmp_path / "m.keras").exists() and out.exists()
    assert any(p.endswith("_assign_layout.txt") for p in os.listdir(tmp_path / "ir"))


def test_weights_change_the_result(tmp_path):
    """--weights really loads: a model with zeroed weights converts to an all-constant output."""
    model = _essentials()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    torch.save(model.state_dict(), tmp_path / "zero.pt")
    keras_path = tmp_path / "z.keras"
    assert main(["convert", f"{MODEL_FILE}:NobucoEssentials", "--input-shape", "1,3,16,16",
                 "--weights", str(tmp_path / "zero.pt"), "-o", str(keras_path)]) == 0
    import torch2keras

    m = torch2keras.load_model(str(keras_path))
    y = np.asarray(m(np.random.rand(1, 3, 16, 16).astype(np.float32)))
    assert np.allclose(y, 0.75)  # hardsigmoid(0) = 0.5 -> 1 - 0.25


def test_supported_lists_ops():
    proc = subprocess.run([sys.executable, "-m", "torch2keras.cli", "supported"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0
    assert "aten.conv2d.default" in proc.stdout and "aten.scaled_dot_product_attention.default" in proc.stdout


def test_bad_factory_is_a_clear_error():
    try:
        main(["convert", f"{MODEL_FILE}:NoSuchThing", "--input-shape", "1,3,8,8", "-o", "x.keras"])
    except SystemExit as e:
        assert "has no attribute 'NoSuchThing'" in str(e)
    else:
        raise AssertionError("expected SystemExit")


def test_convert_quantized_with_calibration_file(tmp_path, capsys):
    """--quantize int8 --calibration FILE.npz: an int8 file, the per-layer check and the
    readiness report in the output."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((16, 1, 3, 32, 32)).astype(np.float32))
    out = tmp_path / "q.tflite"
    code = main(["convert", f"{MODEL_FILE}:NobucoEssentials", "--input-shape", "1,3,32,32", "-o", str(out),
                 "--channels-last", "--quantize", "int8", "--calibration", str(tmp_path / "cal.npz"),
                 "--io-dtype", "float32", "--report-json", str(tmp_path / "r.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "TFLite: int8, float32 I/O" in printed and "int8 per-layer check" in printed
    assert "delegate readiness" in printed and "GPU:" in printed and "EdgeTPU:" in printed
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["tflite"]["quantize"] == "int8" and len(data["quantization"]["layers"]) >= 3
    assert all(layer["rel_error"] < 0.2 for layer in data["quantization"]["layers"])
    assert data["delegates"]["static_shapes"] is True


def test_quantize_int8_needs_calibration(tmp_path):
    try:
        main(["convert", f"{MODEL_FILE}:NobucoEssentials", "--input-shape", "1,3,8,8", "-o", str(tmp_path / "q.tflite"),
              "--quantize", "int8"])
    except SystemExit as e:
        assert "--calibration FILE.npz" in str(e)
    else:
        raise AssertionError("expected SystemExit")
