"""cWDM's names, in a module that imports nothing: the command line (kept light) and the code behind it share them."""

#: the four BraTS contrasts, in class-label order (a model's class label is the missing contrast's index)
CONTRASTS = ("t1n", "t1c", "t2w", "t2f")
