"""Real-time sync: the doorbell that announces committed changes, and the feed that delivers them."""
