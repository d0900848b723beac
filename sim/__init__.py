"""Simulated devices that speak the real wire protocols."""
