"""Every table and figure of the paper as runs: :mod:`~ladder.experiments.manifest` (what runs),
:mod:`~ladder.experiments.runner` (``ladder reproduce``), :mod:`~ladder.experiments.slurm` (on a
SLURM cluster), :mod:`~ladder.experiments.paper` (the paper's numbers),
:mod:`~ladder.experiments.tables` and :mod:`~ladder.experiments.report` (``ladder report``)."""
