"""The method's pieces that know no training loop: the activation library, pruning and allocation, LAHC and the other
searches, the search log, frozen activations. Imports nothing else of the kit.
"""
