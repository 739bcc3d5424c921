"""`make bench`: the service measured against baselines run side by side (see BENCHMARKS.md)."""
