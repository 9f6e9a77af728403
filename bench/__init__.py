"""Benchmarks: our journeys against bare Temporal doing the same shape of work, in one run."""
