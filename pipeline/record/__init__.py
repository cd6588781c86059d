"""Record: the run's results.json (store), its reuse keys and look-ups, and the verdicts."""
