"""The ``medfusion`` command: argument parsing only; every subcommand makes one API call."""
