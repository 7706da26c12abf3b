"""Baseline methods for latentreason, each a thought producer."""
