"""What only the notebooks use: lesson plots, widgets, the mechanism tables, the exercises' checks. Imports the layers
below.
"""
