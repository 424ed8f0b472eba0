"""Logs, request ids and metrics: what operators see of the running service."""
