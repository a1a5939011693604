"""seg2med's names, in a module that imports nothing: the command line (kept light) and the code behind it share
them."""

#: what can be generated
TARGETS = ("ct", "t1", "t2")
#: what a prior image can be: CT in HU, or an MR sequence of ``tissues.json``
MODALITIES = ("ct", "t1", "t1_opposed", "t2")
#: the TotalSegmentator tasks whose label maps are read
TASKS = ("total", "total_mr")
#: the prior tables: ``seg2med`` (the authors') and ``medfusion`` (medfusion's earlier literature table)
PRIOR_TABLES = ("seg2med", "medfusion")
