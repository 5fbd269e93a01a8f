"""Reverie: an agent-memory daemon that consolidates its conversations into its weights while it sleeps."""

__version__ = "0.1.0"
