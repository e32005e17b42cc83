"""Looking inside: unsupported-op errors with stubs, drawings of the IR, the CLI's --draw, explain()."""

from __future__ import annotations

import ast
import inspect
import io
import json
import os
import re
import xml.etree.ElementTree as ET

import attrs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import torch2keras  # noqa: E402
from torch2keras import converters  # noqa: E402
from torch2keras.cli import main  # noqa: E402
from torch2keras.draw import draw_graph  # noqa: E402
from torch2keras.frontend_torch import LOWERINGS  # noqa: E402
from torch2keras.ir.printer import Namer  # noqa: E402

MODEL_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models.py")
SVG = "{http://www.w3.org/2000/svg}"


def _line_of(marker: str) -> int:
    with open(__file__) as f:
        lines = [i for i, text in enumerate(f, start=1) if marker in text and "_line_of" not in text]
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------------- unsupported ops


class TwoUnsupported(nn.Module):
    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs()  # MARK-fft
        det = torch.linalg.det(x[:, :4].reshape(1, 2, 2))  # MARK-det
        return spectrum.sum() + det.sum()


def test_two_unsupported_ops_listed_with_lines_and_stubs():
    for op in (torch.ops.aten._fft_r2c.default, torch.ops.aten._linalg_det.default):
        assert op not in LOWERINGS  # the premise: pick others if these get lowerings
    with pytest.raises(torch2keras.UnsupportedOpError) as info:
        torch2keras.compile(TwoUnsupported(), torch.randn(1, 8))
    err = info.value
    assert sorted(op for op, _ in err.ops) == ["aten._fft_r2c.default", "aten._linalg_det.default"]
    lines = {op: loc.line for op, loc in err.ops}
    assert lines == {"aten._fft_r2c.default": _line_of("MARK-fft"), "aten._linalg_det.default": _line_of("MARK-det")}
    text = str(err)
    assert f"test_inspect.py:{_line_of('MARK-fft')}" in text and f"test_inspect.py:{_line_of('MARK-det')}" in text
    assert "torch.fft.rfft(x)" in text and "torch.linalg.det(" in text
    # a stub per op: the decorator, the signature from the op's schema, the layout to declare
    assert "@torch2keras.lowering(torch.ops.aten._fft_r2c.default)\ndef lower__fft_r2c(ctx, self, dim, " \
           "normalization, onesided):" in text
    assert "@torch2keras.lowering(torch.ops.aten._linalg_det.default)\ndef lower__linalg_det(ctx, A):" in text
    assert '@torch2keras.converter(torch.ops.aten._linalg_det.default, layout="torch")' in text
    assert "first call: _fft_r2c(f32[1,8], [1], 0, True) -> complex64[1,5]" in text
    stubs = text.split("Stubs to fill (one per op):", 1)[1]
    ast.parse(stubs)  # pasteable: valid Python as printed


def test_stub_registers_and_runs_once_filled():
    """A filled-in converter stub converts the op (the stubs' contract, end to end)."""

    class UsesErfinv(nn.Module):
        def forward(self, x):
            return torch.special.erfinv(x * 0.5)

    target = torch.ops.aten.erfinv.default
    builtin = LOWERINGS.pop(target, None)  # pretend erfinv has no lowering (it has one today)
    try:
        with pytest.raises(torch2keras.UnsupportedOpError) as info:
            torch2keras.compile(UsesErfinv(), torch.rand(2, 3))
        assert '@torch2keras.converter(torch.ops.aten.erfinv.default, layout="torch")\ndef convert_erfinv(self):' \
            in str(info.value)

        @torch2keras.converter(target, layout="any")
        def convert_erfinv(self):  # the stub, filled in
            return keras.ops.erfinv(self)

        try:
            x = torch.rand(2, 3)
            result = torch2keras.compile(UsesErfinv(), x, on_mismatch="raise")
            assert result.ir.op_counts()["custom"] == 1
        finally:
            converters.unregister(target)
    finally:
        if builtin is not None:
            LOWERINGS[target] = builtin
    assert LOWERINGS.get(target) is builtin  # unregistering the converter left the lowerings as they were


# ----------------------------------------------------------------------------- drawing


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = F.hardsigmoid(self.conv(x))
        return self.fc(y.mean(dim=(2, 3))), y.flatten(1)


@pytest.fixture(scope="module")
def small_result():
    torch.manual_seed(0)
    return torch2keras.compile(Small().eval(), torch.randn(1, 3, 8, 8), on_mismatch="raise")


def _dump_names(graph, constants=False) -> dict[str, str]:
    namer = Namer()
    names = {}
    for n in graph.topo_order():
        for v in n.outputs:
            namer(v)
        if constants or n.op != "constant":
            names[namer(n.outputs[0])] = n.op
    return names


def test_draw_svg_has_every_node_layouts_and_error_colours(small_result, tmp_path):
    path = small_result.draw(str(tmp_path / "graph.svg"))
    root = ET.parse(path).getroot()
    groups = {g.get("id")[len("node-"):]: g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("node-")}
    names = _dump_names(small_result.ir)
    expected = set(names) | {f"output-{n}" for n in small_result.ir.output_names}
    assert set(groups) == expected
    for name, op in names.items():
        g = groups[name]
        assert f"op-{op}" in g.get("class").split()
        texts = [t.text for t in g.iter(f"{SVG}text")]
        assert texts[0] == f"%{name} = {op}"
    assert any("NHWC" in (t.text or "") for t in root.iter(f"{SVG}text"))  # the conv's stored layout
    relayouts = [g for g in groups.values() if "op-relayout" in g.get("class")]
    assert relayouts and all("status-relayout" in g.get("class") for g in relayouts)
    checked = {c.value for c in small_result.report.nodes}
    assert checked and all("status-ok" in groups[n].get("class") for n in checked if n in groups)
    edges = [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]
    conv = next(n for n, op in names.items() if op == "conv")
    assert any(e.get("data-from") == conv for e in edges)


def _page_data(text: str) -> dict:
    """The graph a page of the HTML view carries (its JSON data element)."""
    found = re.search(r'<script id="t2k-data" type="application/json">(.*?)</script>', text, re.S)
    assert found, "no graph data in the page"
    return json.loads(found.group(1))


def test_draw_html_is_self_contained_and_colours_the_first_mismatch(small_result, tmp_path):
    first = next(c for c in small_result.report.nodes if c.op == "hardsigmoid")
    planted = [attrs.evolve(c, status="first") if c is first else c for c in small_result.report.nodes]
    page = draw_graph(small_result.ir, str(tmp_path / "g.html"), planted, title="Small")
    text = open(page).read()
    assert text.startswith("<!doctype html>") and "<svg" in text and "</html>" in text
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # nothing fetched from elsewhere
    assert "torch2kerasView" in text and "<style>" in text  # the script and style are inline
    data = _page_data(text)
    nodes = {n["name"]: n for n in data["nodes"]}
    assert set(nodes) == set(_dump_names(small_result.ir)) | set(small_result.ir.output_names)
    assert nodes[first.value]["status"] == "first" and nodes[first.value]["op"] == "hardsigmoid"
    assert ["first", "first mismatch", "#d9383a"] in data["legend"]
    conv = next(n for n in data["nodes"] if n["op"] == "conv")
    assert conv["scopes"] == [["conv", "Conv2d"]] and conv["file"] == __file__
    assert any(t.endswith("NHWC") for t in conv["types"])  # the stored layout
    relayouts = [n for n in data["nodes"] if n["op"] == "relayout"]
    assert relayouts and all(n["status"] == "relayout" and "->" in n["note"] for n in relayouts)


def test_cli_convert_draws_and_dumps(tmp_path, capsys):
    html_path = tmp_path / "graph.html"
    code = main(["convert", f"{MODEL_FILE}:NobucoEssentials", "--input-shape", "1,3,16,16", "-o",
                 str(tmp_path / "m.keras"), "--dump-ir", str(tmp_path / "ir"), "--draw", str(html_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert f"wrote {html_path}" in out and "values compared with PyTorch" in out
    nodes = _page_data(html_path.read_text())["nodes"]
    assert {"conv", "hardsigmoid"} <= {n["op"] for n in nodes} and any(n["status"] == "ok" for n in nodes)
    located = [n for n in nodes if n["file"]]
    assert located and all(n["file"] == MODEL_FILE for n in located)
    assert {n["line"] for n in located} <= _forward_lines(MODEL_FILE, "class NobucoEssentials")


def _forward_lines(path: str, marker: str) -> set[int]:
    """The line numbers of the body of the first ``forward`` after ``marker`` in ``path``."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = next(i for i, t in enumerate(lines) if t.startswith(marker))
    body = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("def forward")) + 1
    end = next(i for i in range(body, len(lines)) if lines[i].strip() and not lines[i].startswith(" " * 8))
    return set(range(body + 1, end + 1))
    assert any(p.endswith("_assign_layout.txt") for p in os.listdir(tmp_path / "ir"))


# ----------------------------------------------------------------------------- explain


def _where(fn) -> str:
    return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"


def test_explain_aten_op_shows_lowering_location_and_source():
    op = torch.ops.aten.conv2d.default
    text = torch2keras.explain(op, file=io.StringIO())
    fn = LOWERINGS[op]
    assert f"lowering: {fn.__module__}.{fn.__qualname__}" in text
    assert f"source:   {_where(fn)}" in text
    assert inspect.getsource(fn).strip().splitlines()[-1].strip() in text  # the source itself
    assert "emits IR op 'conv' (layout class channel)" in text and "emit_conv" in text


@pytest.mark.parametrize("target, aten_name", [(torch.relu, "aten.relu.default"),
                                               (F.hardsigmoid, "aten.hardsigmoid.default"),
                                               (nn.Conv2d, "aten.conv2d.default"),
                                               (nn.BatchNorm2d, "aten._native_batch_norm_legit_no_training.default"),
                                               (nn.LayerNorm, "aten.layer_norm.default"),
                                               ("aten.gelu.default", "aten.gelu.default")])
def test_explain_functions_and_modules(target, aten_name):
    out = io.StringIO()
    text = torch2keras.explain(target, file=out)
    assert out.getvalue() == text
    assert aten_name in text and "lowering: torch2keras.frontend_torch.ops." in text and "def " in text


def test_explain_unsupported_and_user_converters():
    text = torch2keras.explain(torch.ops.aten._fft_r2c.default, file=io.StringIO())
    assert "no lowering" in text and "def lower__fft_r2c(ctx, self, dim, normalization, onesided):" in text

    class Mine(nn.Module):
        def forward(self, x):
            return x

    def convert_mine(module, x):  # MARK-explain
        return x

    torch2keras.converter(Mine, layout="channels_last")(convert_mine)
    try:
        text = torch2keras.explain(Mine, file=io.StringIO())
    finally:
        converters.unregister(Mine)
    assert "user converter" in text and "layout 'channels_last'" in text
    assert f"test_inspect.py:{_line_of('MARK-explain')}" in text and "def convert_mine(module, x):" in text


# ----------------------------------------------------------------------------- source lines


def _located(result):
    return [n for n in result.ir if n.loc is not None and n.loc.file]


def test_sequential_model_is_located_at_the_users_call_not_in_torch():
    """nn.Sequential's forward is torch's own code: every node names the line that called compile
    (the only line of the user's) and keeps its module path."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    result = torch2keras.compile(model, torch.randn(1, 3, 8, 8), on_mismatch="raise")  # MARK-seq
    located = _located(result)
    assert {n.op for n in located} >= {"conv", "relu", "linear"}
    assert {(n.loc.file, n.loc.line) for n in located} == {(__file__, _line_of("MARK-seq"))}
    assert "torch2keras.compile(model" in located[0].loc.code
    assert {n.loc.module_path for n in located if n.op == "conv"} == {"0"}
    assert {n.loc.module_type for n in located if n.op == "linear"} == {"Linear"}
    checks = result.report.nodes
    assert checks and all(c.file == __file__ and c.line == _line_of("MARK-seq") for c in checks)


@pytest.fixture(scope="module")
def mobilenet_small():
    from compat import import_torchvision

    tv = import_torchvision()
    torch.manual_seed(0)
    model = tv.models.mobilenet_v3_small().eval()
    return torch2keras.compile(model, torch.randn(1, 3, 32, 32), on_mismatch="raise")  # MARK-tv


def test_torchvision_model_is_located_at_the_users_call_with_module_paths(mobilenet_small):
    located = _located(mobilenet_small)
    assert len(located) > 50
    assert {(n.loc.file, n.loc.line) for n in located} == {(__file__, _line_of("MARK-tv"))}
    conv = next(n for n in located if n.op == "conv")
    assert conv.loc.module_path == "features.0.0" and conv.loc.module_type == "Conv2d"
    assert conv.loc.scopes == (("features", "Sequential"), ("features.0", "Conv2dNormActivation"),
                               ("features.0.0", "Conv2d"))
    assert f"test_inspect.py:{_line_of('MARK-tv')}" in conv.loc.short()


class UsesLibraryBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())

    def forward(self, x):
        return self.body(x) * 2  # MARK-own


def test_own_forward_wins_over_the_callers_line():
    result = torch2keras.compile(UsesLibraryBlock().eval(), torch.randn(1, 3, 8, 8))
    assert {n.loc.line for n in _located(result)} == {_line_of("MARK-own")}
    assert {n.loc.module_path for n in _located(result) if n.op == "conv"} == {"body.0"}


# ----------------------------------------------------------------------------- pictures of failures


@pytest.fixture
def without_hardswish():
    """Pretend aten.hardswish has no lowering (it has one)."""
    target = torch.ops.aten.hardswish.default
    builtin = LOWERINGS.pop(target)
    yield target
    LOWERINGS[target] = builtin


def test_unsupported_call_in_sequential_names_the_users_line_and_is_drawn(without_hardswish, tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardswish(), nn.Conv2d(4, 2, 1)).eval()
    page = tmp_path / "failed.html"
    with pytest.raises(torch2keras.UnsupportedOpError) as info:
        torch2keras.compile(model, torch.randn(1, 3, 8, 8), draw=str(page))  # MARK-unsup
    text = str(info.value)
    assert f"aten.hardswish.default at module '1' (Hardswish), {__file__}:{_line_of('MARK-unsup')}" in text
    assert "conv.py" not in text and "activation.py" not in text
    data = _page_data(page.read_text())
    assert data["kind"] == "captured" and "1 call(s) of 1 op(s) have no lowering: hardswish" in data["summary"]
    by_op = {n["op"]: n for n in reversed(data["nodes"])}  # the first call of each op
    red = by_op["hardswish"]
    assert red["status"] == "unsupported" and red["scopes"] == [["1", "Hardswish"]]
    assert red["stub"].startswith("@torch2keras.lowering(torch.ops.aten.hardswish.default)")
    assert (red["file"], red["line"]) == (__file__, _line_of("MARK-unsup"))
    assert by_op["conv2d"]["status"] == "none" and by_op["conv2d"]["types"] == ["f32[1,4,6,6]"]
    assert red["inputs"] == [by_op["conv2d"]["id"]]  # edges follow the captured calls
    assert info.value.view.nodes[-1].op == "output"
    svg = draw_graph(info.value.view, str(tmp_path / "failed.svg"))
    root = ET.parse(svg).getroot()
    assert [g.get("class") for g in root.iter(f"{SVG}g") if "op-hardswish" in (g.get("class") or "")] == \
        ["node op-hardswish status-unsupported"]


def test_cli_draws_the_failed_graph(without_hardswish, tmp_path, capsys):
    page = tmp_path / "failed.html"
    code = main(["convert", f"{__file__}:sequential_with_hardswish", "--input-shape", "1,3,8,8", "-o",
                 str(tmp_path / "m.keras"), "--draw", str(page)])
    assert code == 1  # a conversion that failed (exit codes: README "Command line")
    captured = capsys.readouterr()
    assert f"wrote {page}" in captured.err and "aten.hardswish.default" in captured.err
    red = [n for n in _page_data(page.read_text())["nodes"] if n["status"] == "unsupported"]
    assert [n["op"] for n in red] == ["hardswish"]
    # the model is torch's code only: located at the factory the command line was given
    assert (red[0]["file"], red[0]["line"]) == (__file__, _line_of("MARK-factory"))
    assert not (tmp_path / "m.keras").exists()


def sequential_with_hardswish():  # MARK-factory
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardswish())


# ----------------------------------------------------------------------------- static SVG, notebooks


def test_svg_of_a_large_model_is_collapsed_and_bounded(mobilenet_small, tmp_path):
    root = ET.parse(mobilenet_small.draw(str(tmp_path / "m.svg"))).getroot()
    assert float(root.get("width")) <= 1600 and float(root.get("height")) <= 3000
    groups = [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith(("node-", "module-"))]
    modules = [g for g in groups if g.get("id").startswith("module-")]
    assert modules and len(groups) <= 60
    drawn = sum(1 for n in mobilenet_small.ir if n.op != "constant") + len(mobilenet_small.ir.outputs)
    counted = sum(int(list(g.iter(f"{SVG}text"))[1].text.split()[0]) for g in modules)  # "N ops"
    assert counted + len(groups) - len(modules) == drawn  # every node in exactly one box
    ids = {g.get("id") for g in modules}
    assert all(i.startswith(("module-features.", "module-classifier")) for i in ids)


def test_notebook_html_of_report_and_graph(small_result):
    report = small_result.report
    table = report._repr_html_()
    assert "<table" in table and f"{report.outputs[0].max_abs_error:.3e}" in table
    assert f"{report.transposes} transposes" in table and "values compared" in table
    text = small_result.ir._repr_html_()  # the IR's own HTML: its text form (the IR knows no pictures)
    assert text.startswith("<pre") and all(f"%{n}" in text for n in _dump_names(small_result.ir))
    page = small_result._repr_html_()  # the result: the report, then the interactive view
    assert page.startswith(table)
    frame = page[len(table):]
    assert frame.startswith("<iframe srcdoc=") and "t2k-data" in frame and "&lt;script" in frame
    assert all(f"&quot;name&quot;:&quot;{n}&quot;" in frame for n in _dump_names(small_result.ir))
