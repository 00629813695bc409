"""baselines models (registration happens on import)."""
