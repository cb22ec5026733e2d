"""Scripts the benchmarks run as fresh child processes (by path, so they import nothing of the bench)."""
