"""What the ``torch2keras`` command line runs: one module per subcommand and the pieces they share.

The parser (every subcommand and option) lives in ``torch2keras/cli.py``; ``preflight``
checks the arguments and files before torch is imported; ``convert``, ``opt`` and ``supported``
run the subcommands; ``console`` shows progress and keeps third-party logs out of sight.
"""
