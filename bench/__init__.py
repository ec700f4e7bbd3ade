"""Benchmark drivers."""
