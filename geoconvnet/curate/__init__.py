"""Curating a dataset root: ``dedup`` (exact and near-duplicate images, and leakage between
train and test by content or by place), with every move recorded so it can be undone."""
