"""The applications, one package each, all on :mod:`medfusion.core`.

An application is a folder ``medfusion/apps/<name>/`` with its model (a :class:`~medfusion.core.model.DiffusionModel`
subclass and checkpoint kind), its preprocessing ``Compose``, training data and loss, bundle entry points, a
no-learning baseline, phantoms, and a ``cli.py`` whose ``register(subparsers)`` adds its sub-commands to
``medfusion``.  To add one: make the folder, list its name here, and add its bundle under ``bundles/``.
"""

#: application packages, in the order their commands appear in ``medfusion --help``
APPS: tuple[str, ...] = ("cwdm", "seg2med", "petct", "stain")
