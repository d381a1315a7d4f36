"""The kit's version: part of every cache key, so results made by another version are never reused.

Bump it whenever a change can move a number (training, search, HPO, data loading); bump
`activations.OPS_VERSION` whenever an operator's definition changes.
"""
KIT_VERSION = "0.4.0"
