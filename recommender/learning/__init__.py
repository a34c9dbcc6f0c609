"""Offline work, the only place torch is imported: evaluation, reports, ranker
training, fine-tuning."""
