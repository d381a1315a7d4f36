"""The sparse RL policy (`policy`) and its plots. Imports the layers below.
"""
