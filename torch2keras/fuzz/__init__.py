"""Random-model fuzzing of the whole compiler: generate valid PyTorch models, check their
conversions against PyTorch on new inputs, shrink failures and report them by root cause.

    python -m torch2keras.fuzz --n 200 --seed 0 --out fuzz_out/
"""
