"""Studies of many runs: the evidence study, paired statistics, the sweep, reproduce, Dask, the shipped results,
figures of runs. Imports the layers below.
"""
