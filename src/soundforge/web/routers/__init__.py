"""The app's routers, one per concern."""
