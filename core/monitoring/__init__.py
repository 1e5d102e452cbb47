"""Input drift: what an adapter was trained on against what it is asked in service.

The pieces, each in its own module:

* :mod:`~polyadapt.monitoring.features` — the statistics of one input (its text's length,
  script, language, the share of words the training data never had; numbers a task adds,
  such as seconds of audio or an image's size);
* :mod:`~polyadapt.monitoring.profile` — a training set's profile (``input_profile.json`` in
  the run folder): each statistic's histogram on the training data's own deciles;
* :mod:`~polyadapt.monitoring.drift` — served traffic against the profile: a population
  stability index (PSI) per statistic and a verdict;
* :mod:`~polyadapt.monitoring.plot` — the comparison drawn in the terminal and as SVG.

``polyadapt serve`` records each request's statistics (never its text) in the lineage store
(:mod:`polyadapt.serving.traffic`); ``polyadapt monitor RUN`` compares them with the run's
profile. Nothing here imports torch.
"""
