"""Small helpers with no medical-imaging content, each used across the package: :mod:`.lazy` (lazy package
exports, so that ``import medfusion.apps.x`` stays cheap), :mod:`.progress` (the progress bars of the commands)
and :mod:`.compat` (importing pytorch-wavelets where ``pkg_resources`` is missing)."""
