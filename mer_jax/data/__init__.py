"""Corpus readers, label sets, splits, features and the input pipeline.

Data flows one way: reader -> records -> features -> pipeline. Readers know nothing about models.
"""
