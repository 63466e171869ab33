"""Built-in editing ops, one plugin per file (installed as ``smapgan.builtin_ops``).

Each file defines one or more functions decorated with ``smapgan.ops.op``;
``smapgan.ops.discover`` imports every module here that does not start with ``_``.
"""
