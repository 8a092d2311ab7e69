"""Models: the architecture registry (``registry``), weights files (``weights``) and
self-describing checkpoints (``checkpoint``)."""
