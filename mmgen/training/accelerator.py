"""The run's ``accelerate.Accelerator``, with multi-process and FSDP runs on CPU machines.

Two gaps of accelerate (1.15) on a machine with no accelerator, closed here:

* A multi-process launch (``accelerate launch --num_processes 2`` with a multi-GPU or FSDP
  config, or torchrun) without ``--cpu`` leaves every process ``DistributedType.NO``: N
  independent runs writing to one folder. With ``WORLD_SIZE`` > 1 and no accelerator the
  processes run over gloo on the CPU (``MULTI_CPU``), as ``ACCELERATE_USE_CPU=true`` would.
* accelerate turns FSDP on only for accelerator devices; an FSDP launch on CPU
  (``ACCELERATE_USE_FSDP=true``, set by ``configs/accelerate/fsdp.yaml``) stays plain data
  parallel. Here the state is switched to FSDP with the plugin the launch's environment
  describes (``FSDP_*``: version 2, one shard unit per ``DecoderBlock``, the state-dict
  type), so accelerate's own FSDP2 path runs: ``fully_shard`` in ``prepare``, gradient
  clipping over shards, sharded ``save_state`` / ``load_state``, ``get_state_dict``.
"""

from __future__ import annotations

import os


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or another accelerator device)."""
    import torch

    return torch.cuda.is_available() or (
        hasattr(torch, "accelerator") and torch.accelerator.is_available()
    )


def build_accelerator(**kwargs):
    """``Accelerator(**kwargs)`` for this launch (see the module docstring); prints one line
    when it runs FSDP on the CPU."""
    from accelerate import Accelerator
    from accelerate.utils import parse_flag_from_env

    on_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator()
    cpu_fsdp = on_cpu and parse_flag_from_env("ACCELERATE_USE_FSDP")
    plugin = None
    if on_cpu:
        kwargs["cpu"] = True
    if cpu_fsdp:
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()  # reads the launch's FSDP_* variables
        kwargs["fsdp_plugin"] = plugin
    accelerator = Accelerator(**kwargs)
    if cpu_fsdp:
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType

        if accelerator.distributed_type != DistributedType.MULTI_CPU:
            raise RuntimeError(
                f"FSDP on CPU expected a MULTI_CPU state, got {accelerator.distributed_type}"
            )
        if plugin.fsdp_version != 2:
            raise ValueError("FSDP on CPU needs fsdp_version: 2 (FSDP2, fully_shard)")
        # the same switch accelerate makes for its GPU types (AcceleratorState.__init__), in
        # both shared states: a later AcceleratorState() copies PartialState's type back
        accelerator.state.fsdp_plugin = plugin
        accelerator.state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        accelerator.print(
            f"FSDP2 on CPU over gloo: {accelerator.num_processes} processes, state dict "
            f"{getattr(plugin.state_dict_type, 'name', plugin.state_dict_type)}"
        )
    return accelerator


def is_fsdp(accelerator) -> bool:
    """Whether the model is sharded (FSDP)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP
