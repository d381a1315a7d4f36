"""Datasets: the `Data` container, the built-in datasets and their on-disk formats, your own tensors or datasets.
Imports `paths` only.
"""
