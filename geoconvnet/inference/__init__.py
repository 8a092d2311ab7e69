"""Inference: one core (``core.infer``: a loaded model + images -> probabilities, batched, on
any device) under ``predict``, ``evaluate`` and the training loop's validation, plus the
metrics they report (``metrics``)."""
