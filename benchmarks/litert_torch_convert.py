"""Google's litert-torch converting its re-authored SmolLM (``litert_torch.generative.examples.
smollm``) to a ``.tflite`` file with ``prefill_<n>`` and ``decode`` signatures: the peer of
``benchmarks/generative.py``, run by that script in a separate environment (litert-torch pins
its own dependencies), one conversion per process.

    python benchmarks/litert_torch_convert.py WEIGHTS.pt OUT.tflite --config JSON --max-context 1024 \
        --prefill 128 [--prefill 32 ...] --quantize none|dynamic_int8|dynamic_int4_block32

WEIGHTS.pt: a Hugging Face ``LlamaForCausalLM`` state dict (the same random weights as ours).
Prints one JSON line: seconds, peak resident memory (bytes) and the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time


def _config(shape: dict):
    from litert_torch.generative.examples.smollm import smollm

    config = smollm.get_model_config()
    config.vocab_size = shape["vocab_size"]
    config.num_layers = shape["num_hidden_layers"]
    config.embedding_dim = shape["hidden_size"]
    block = config.block_config(0)
    block.attn_config.num_heads = shape["num_attention_heads"]
    block.attn_config.num_query_groups = shape["num_key_value_heads"]
    block.attn_config.head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    block.attn_config.rotary_base = shape.get("rope_theta", 10000.0)
    block.ff_config.intermediate_size = shape["intermediate_size"]
    eps = shape.get("rms_norm_eps", 1e-6)  # (LlamaConfig's default; litert-torch's is 1e-5)
    for norm in (block.pre_attention_norm_config, block.post_attention_norm_config, config.final_norm_config):
        norm.epsilon = eps
    return config


def convert(weights: str, out: str, shape: dict, max_context: int, prefill: list[int], quantize: str) -> dict:
    import torch
    from litert_torch.generative.examples.smollm import smollm
    from litert_torch.generative.utilities import converter, export_config, loader, model_builder

    start = time.perf_counter()
    model = model_builder.build_decoder_only_model(
        weights, _config(shape), smollm.TENSOR_NAMES, model_class=smollm.SmolLM,
        custom_loader=loader.get_custom_loader(weights, "pt"), mask_cache_size=max_context)
    folder = tempfile.mkdtemp()
    try:
        written = converter.convert_to_tflite(model, folder, "smollm", prefill if len(prefill) > 1 else prefill[0],
                                              max_context, quantize=quantize, config=model.config,
                                              export_config=export_config.ExportConfig())
        shutil.move(written, out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    del torch
    return {"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "bytes": os.path.getsize(out), "path": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights")
    parser.add_argument("out")
    parser.add_argument("--config", required=True, help="the Llama shape as JSON (LlamaConfig's names)")
    parser.add_argument("--max-context", type=int, required=True)
    parser.add_argument("--prefill", type=int, action="append", required=True)
    parser.add_argument("--quantize", default="none")
    args = parser.parse_args()
    result = convert(args.weights, args.out, json.loads(args.config), args.max_context, args.prefill, args.quantize)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
