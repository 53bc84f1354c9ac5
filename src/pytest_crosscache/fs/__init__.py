"""Files on disk: atomic writes, the cache directory, paths kept inside it."""
