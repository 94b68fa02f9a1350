"""External tools at pinned versions: find, build from source archives, install into the cache."""
