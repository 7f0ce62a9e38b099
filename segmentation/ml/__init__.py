"""Segmentation's machine-learning core: plain functions over NumPy arrays.

Nothing here imports Django, so the core can be tested and benchmarked alone; the Django side
computes features, feeds them in as arrays and stores what comes back.
"""
