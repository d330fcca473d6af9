"""Synthetic micro-expression datasets made from two real face photographs, with exact ground truth."""
