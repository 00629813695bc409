"""Caption metrics (COCO metrics, BERTScore) and retrieval metrics. Importing registers them in `METRICS`."""
