"""Synthetic demo data: parametric shapes (primitives, categories) written in the real layouts."""
