"""Inference: one core (``core.infer``: a loaded model + images -> probabilities, batched, on
any device) under ``predict``, ``evaluate`` and the training loop's validation, plus the
metrics they report (``metrics``)."""

# Images per forward pass when nothing else is asked for (here, not in ``core``, so the CLI
# can show it without importing torch).
BATCH_SIZE = 32
