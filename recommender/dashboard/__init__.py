"""The operators' console in the admin: queries, views, urls."""
