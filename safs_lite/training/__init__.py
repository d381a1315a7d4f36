"""Training: the loop (`loop`), the compact engine, stage 1's candidate fitness. Imports `method`, `nets`, `data`.
"""
