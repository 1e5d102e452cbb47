"""Lineage: dataset manifests, run records, adapter provenance, the registry and OpenLineage.

Importing this package is cheap (no SQLAlchemy, no torch); import the submodules:
:mod:`~polyadapt.lineage.state` (where state lives), :mod:`~polyadapt.lineage.store` (the
database), :mod:`~polyadapt.lineage.registry` (versions, references, the promotion gate),
:mod:`~polyadapt.lineage.manifest`, :mod:`~polyadapt.lineage.environment`,
:mod:`~polyadapt.lineage.provenance`, :mod:`~polyadapt.lineage.openlineage`,
:mod:`~polyadapt.lineage.liveness` (whether a run's process still runs) and
:mod:`~polyadapt.lineage.cli` (the ``lineage`` and ``adapters`` commands).
"""
