"""The run on one machine, without Slurm: render on every core, then assemble
(``runner``), with its progress (``progress``)."""
