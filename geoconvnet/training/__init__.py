"""Training: the config (``config``), the training loop (``train``) and DDP (``distributed``),
temperature calibration (``calibrate``) and Optuna search (``tune``)."""
