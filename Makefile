# All pip commands use -c constraints.txt so pip never resolves an unpinned
# (CUDA) torch build.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := -c constraints.txt
STAMP := .venv/.stamp

export TF_CPP_MIN_LOG_LEVEL=2
export CUDA_VISIBLE_DEVICES=-1

.PHONY: env test test-slow demo bench bench-quant bench-quant-random bench-lm-quality bench-generative bench-peer-latency bench-op-counts bench-lstm-forms fuzz clean supported-list

env: $(STAMP)

$(PY):
	python3 -m venv .venv

# torch2keras/__init__.py is listed so the editable install is redone once the
# package exists (setuptools maps only packages found at install time).
# torchvision goes in last with --no-deps: its declared deps would re-resolve torch.
$(STAMP): setup.cfg constraints.txt requirements-dev.txt $(wildcard torch2keras/__init__.py) | $(PY)
	$(PIP) install $(CONSTRAINTS) torch==2.13.0
	$(PIP) install $(CONSTRAINTS) -e . -r requirements-dev.txt
	$(PIP) install $(CONSTRAINTS) --no-deps torchvision==0.28.0
	touch $(STAMP)

test: env
	$(PY) -m pytest -n 2 --dist loadfile -q

supported-list: env
	$(PY) -m torch2keras.commands.supported

test-slow: env
	$(PY) -m pytest -m slow -q

demo: env
	$(PY) benchmarks/demo.py

bench: env
	$(PY) benchmarks/layout.py

# networks trained on scikit-learn's digits: every quantization path (~15 min on 2 cores)
bench-quant: env
	nice $(PY) benchmarks/quantization_trained.py

# torchvision models with random weights: the TF converter's fp16 / dynamic / calibrated int8
bench-quant-random: env
	$(PY) benchmarks/quantization.py

# perplexity of a small Llama trained here, float vs int8 / int4 weights in LiteRT (~25 min on
# 2 shared cores; the trained weights are cached: ARGS=--retrain trains again)
bench-lm-quality: env
	nice $(PY) benchmarks/lm_quality.py $(ARGS)

# a SmolLM-135M-shaped Llama: conversion, file, LiteRT prefill/decode speed against litert-torch
# (~30 min on 2 cores). litert-torch runs in its own venv (it pins its own dependencies).
PEER_PYTHON ?= .peers-venv/bin/python
bench-generative: env $(PEER_PYTHON)
	nice $(PY) benchmarks/generative.py --peer-python $(PEER_PYTHON)

# LiteRT latency of our direct and TF-converter files against litert-torch's (vit_b_16, a 2-layer LSTM,
# the conv-hardsigmoid-slice model; interleaved rounds, 2 threads; ~10 min on 2 cores)
bench-peer-latency: env $(PEER_PYTHON)
	nice $(PY) benchmarks/peer_latency.py --peer-python $(PEER_PYTHON) $(ARGS)

# ops, TRANSPOSEs, ops off XNNPACK and errors of the direct and TF-converter files on the test zoo
# (random weights; ~30 min on 2 shared cores; ARGS=--models resnet18,googlenet for some)
bench-op-counts: env
	nice $(PY) benchmarks/op_counts.py $(ARGS)

# LiteRT latency of the unrolled and the fused LSTM over sizes, 1 and 2 threads (what to_tflite's
# lstm="auto" rests on; ~5 min on 2 cores, run it on a quiet machine)
bench-lstm-forms: env
	$(PY) benchmarks/lstm_forms.py $(ARGS)

.peers-venv/bin/python:
	python3 -m venv .peers-venv
	.peers-venv/bin/pip install -c benchmarks/peers-constraints.txt torch==2.13.0 litert-torch==0.10.0 tensorflow-cpu

# random-model fuzzing: make fuzz N=500 SEED=0 (results, table and reproducers in fuzz_out/)
N ?= 200
SEED ?= 0
fuzz: env
	$(PY) -m torch2keras.fuzz --n $(N) --seed $(SEED) --out fuzz_out

clean:
	rm -rf out/ build/ dist/ *.egg-info torch2keras.egg-info .pytest_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
