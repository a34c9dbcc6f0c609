"""Demo shop data: a deterministic bilingual (zh/en) catalogue, users and behaviours.

Pure Python with no Django imports; see :mod:`recommender.demo.catalogue`.
"""
