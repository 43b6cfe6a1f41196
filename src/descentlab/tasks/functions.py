"""Rosenbrock, quadratic and other 2-D test functions (being written)."""
