"""clip4idc models (registration happens on import)."""
