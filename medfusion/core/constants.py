"""Names the command line shares with the core, in a module that imports nothing (``medfusion --help`` stays
light)."""

#: the arithmetic a network can run in (:mod:`.precision`)
PRECISIONS = ("float32", "bfloat16", "float16")
