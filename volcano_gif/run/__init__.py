"""The run: its record and lifecycle (``record``: ``output/run.json``, its states
and the moves between them), one run per folder (``guard``) and the run report
(``report``). Used by whoever starts, assembles, watches or cancels a run."""
