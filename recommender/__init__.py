"""The recommender Django app: catalogue, behaviours, vectors, serving and learning."""
