"""Distillation of the model being exported from the dense one (torch)."""
