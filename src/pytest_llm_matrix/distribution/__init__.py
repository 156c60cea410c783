"""Distribution over xdist workers.

The model-aware scheduler (:mod:`.scheduling`), the xdist hooks (:mod:`.xdist`), preloaded
workers (:mod:`.preload`, with the processes it starts: :mod:`._preloader` and
:mod:`._launcher`) and what makes a run's processes and state die with it
(:mod:`.lifetime`).
"""
