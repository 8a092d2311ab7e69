"""Inference: one core (``core.infer``: a loaded model + images -> probabilities, batched, on
any device) under ``predict``, ``evaluate`` and the training loop's validation, plus the
metrics they report (``metrics``)."""

# Images per forward pass when nothing else is asked for (here, not in ``core``, so the CLI
# can show them without importing torch). On 2 CPU cores resnet50 predicted 16-18 images/s
# in batches of 1 to 8 but 12 in batches of 32 (benchmarks/RESULTS.md, 2026-11-27); a GPU
# needs larger batches to stay busy.
BATCH_SIZE_CPU = 8
BATCH_SIZE_GPU = 32


def default_batch_size(device_type: str) -> int:
    return BATCH_SIZE_CPU if device_type == "cpu" else BATCH_SIZE_GPU
