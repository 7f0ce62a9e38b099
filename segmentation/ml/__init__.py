"""Segmentation's machine-learning core: plain functions over NumPy arrays.

Nothing here imports Django, so the core can be tested and benchmarked alone; the Django side
computes features, feeds them in as arrays and stores what comes back. `names` holds what
Django needs at start-up and on hot paths (algorithm names, strategies, thresholds, the RFM grid)
without importing NumPy, SciPy or scikit-learn; the other modules are imported only where a run
fits, scores or loads a model.
"""
