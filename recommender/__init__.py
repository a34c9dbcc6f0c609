"""The recommender app: one Django app (label ``recommender``), grouped by layer.

    conf, behaviour     every setting with its default; what an event kind means
    models, admin, signals, tasks, apps      Django glue
    spaces/     encoder spaces, their HNSW indexes, embedding, binary vector I/O
    ingest/     events, file importers, presets, privacy, input limits
    serving/    the request path (SQL and numpy, never torch): pipeline, candidate
                sources, profiles, ranking, the learned scorer, explanations
    learning/   offline work, the only place torch is imported: evaluation, reports,
                ranker training, fine-tuning
    api/        the REST API: serializers, views, access (keys, scopes, throttles)
    dashboard/  the operators' console; demo/ the demo catalogue and storefront

Imports flow down: api, dashboard, management, admin > demo > signals > tasks >
health, apikeys, shopper_tokens > learning > ingest > serving > spaces > behaviour,
sharedcache > models > conf. ``lint-imports`` (in ``make test``) checks it; the
contracts are in pyproject.toml.
"""
