"""Sweep orchestrator: specs, multi-objective search, schedulers, tracking and submission."""
