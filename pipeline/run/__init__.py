"""Run: string the stages together for one run (options, walk over steps, reuse, lead-in)."""
