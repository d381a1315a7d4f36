"""One SAFS run: its config and key, run folders, the pipeline's stages, baselines, HPO and storages, `check`, Table
1's columns. Imports the layers below.
"""
