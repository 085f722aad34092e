"""What the operator's commands share: the wave view folded from the audit stream, its display."""
