"""Deployment: exports (formats and ONNX), their checks against the run, model cards, the compact module, sparse
layers. Imports the layers below.
"""
