"""The multi-node topology (scripts/cluster.sh), tested end to end."""
