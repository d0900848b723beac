"""Device drivers: wire protocols, transports and typed driver classes."""
