"""Metrics (300VW protocol), scoring, the accuracy table, bench, the simulated annotator."""
