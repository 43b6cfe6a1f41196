"""Learning-rate schedules by name (being written)."""
