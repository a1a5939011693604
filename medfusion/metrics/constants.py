"""Names the command line shares with the metrics, in a module that imports nothing (``medfusion --help`` stays
light)."""

#: the BraTS challenges whose lesion-wise evaluation :mod:`.brats` runs: protocol name → (the configuration's name
#: in ``brats-evaluation``, what it scores)
BRATS_CHALLENGES = {
    "brats-gli": ("gli", "adult glioma, labels 1 NETC, 2 SNFH, 3 ET, 4 RC (2024+)"),
    "brats-mets": ("mets", "brain metastases, labels 1 NETC, 2 SNFH, 3 ET, 4 RC"),
    "brats-ped": ("ped", "paediatric tumours, labels 1 ET, 2 NET, 3 CC, 4 ED"),
    "brats-menpre": ("MenPre", "pre-operative meningioma, labels 1 NETC, 2 SNFH, 3 ET"),
    "brats-menrt": ("MenRT", "meningioma radiotherapy, label 1 GTV"),
    "brats-goat": ("GoAT", "generalisability across tumours, labels 1 NETC, 2 SNFH, 3 ET"),
}
