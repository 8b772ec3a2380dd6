"""Demo, rehearsal and the writer program they (and the tests and benchmarks) run."""
