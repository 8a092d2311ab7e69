"""Small shared utilities every stage may use: errors, atomic file writes, progress, devices."""
