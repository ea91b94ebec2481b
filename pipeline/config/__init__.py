"""Typed configs, validated in one place, and attnlab's own errors."""
