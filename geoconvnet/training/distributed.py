"""Multi-GPU / multi-node training with PyTorch DDP, started by ``torchrun``.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; :func:`setup` turns them into a process
group (NCCL on CUDA, gloo on CPU) and the device of this process. Without them everything
here is a no-op, so a plain ``geoconvnet train`` is a world of one.

    torchrun --standalone --nproc-per-node 4 -m geoconvnet train --data cache ...
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..utils.errors import ConfigError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0 alone logs, writes metrics and saves checkpoints."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun; returns this process's device."""
    if world_size() == 1:
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) "
                              "here; use --nproc-per-node <= the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"distributed training runs on CUDA (NCCL) or CPU (gloo), not {device}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the training steps run: DDP-wrapped in a multi-process run."""
    if not dist.is_initialized():
        return net
    ids = [device.index] if device.type == "cuda" else None
    # No buffer broadcast at every forward call: with screenshots of mixed sizes a batch is
    # a list, run image by image, so ranks make different numbers of calls and the
    # broadcasts would stop pairing up (a hang). Each rank keeps its own BatchNorm
    # statistics; checkpoints hold rank 0's.
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids,
                                                     broadcast_buffers=False)


def broadcast(value):
    """Rank 0's value of a picklable object, on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(*tensors: torch.Tensor) -> None:
    """Sum tensors over all ranks, in place (train metrics of the whole epoch)."""
    if dist.is_initialized():
        for tensor in tensors:
            dist.all_reduce(tensor)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
