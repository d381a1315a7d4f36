"""Networks: LeNet-5 and the model zoo, and `make_searchable` for a network of your own. Imports `method`.
"""
