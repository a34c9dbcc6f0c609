"""The request path, SQL and numpy, never torch: the pipeline, candidate sources,
profiles, ranking, the learned scorer, explanations."""
