"""What each query and mutation does, one module per area."""
