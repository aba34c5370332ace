"""Where stems live on disk and how they get there safely."""
