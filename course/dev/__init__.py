"""Development: the demo class, the benchmarks, and the scratch course folders they and
the tests grade in."""
