"""Process-group set-up for `torchrun` (DistributedDataParallel), CPU (gloo) or CUDA (nccl).

A single process (no `WORLD_SIZE` in the environment) runs without a process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a distributed run."""

    rank: int = 0  # global rank
    local_rank: int = 0  # rank on this node (selects the CUDA device)
    world_size: int = 1  # number of processes

    @property
    def enabled(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and writes checkpoints."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group torchrun describes (env:// rendezvous), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank=rank, local_rank=local, world_size=world)


def barrier(env: DistEnv) -> None:
    """Wait until every process gets here (no-op for a single process): at the end of
    training, so that no rank leaves the group while rank 0 still writes its checkpoint
    (a gloo rank that left early aborted at exit once in CI)."""
    if env.enabled:
        dist.barrier()


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of a tensor over all processes (identity for a single process)."""
    if not env.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / env.world_size


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA (this process's local GPU) when present, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available; "
                         "use device: auto or cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device '{name}' must be auto, cpu, cuda or cuda:N")
    return torch.device(name)
