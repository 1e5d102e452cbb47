"""Data, not models: record schemas, loaders, validation and fingerprints per modality.

Nothing here imports torch. Each loader returns the records it kept and, for every record
it rejected, the reason (the record is *quarantined*, the run goes on).
"""

from polyadapt.modalities.records import Dataset, Quarantined

__all__ = ["Dataset", "Quarantined"]
