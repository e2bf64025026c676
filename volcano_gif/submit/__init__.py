"""The login-node side of a Slurm run: what ``submit-gif-job`` plans and records
(``plan``, ``submission``: also ``--dry-run``, ``--resume``, ``--cancel``) and
``volcano-gif watch`` (``watch``)."""
