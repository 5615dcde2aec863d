"""Deliberate breakages ("mutants"), each with the tests that must catch it.

A mutant is a monkeypatch applied before collection by this pytest plugin:

    MMGEN_MUTANT=resume-ignored PYTHONPATH=tests pytest -p mutants \\
        tests/training/test_training.py::test_resume_from_latest_reproduces_uninterrupted_losses

prints ``mutant resume-ignored: ...`` on stderr and must end with that test FAILED.
``tests/test_mutants.py`` runs every mutant against its tests and fails when one survives, so
a test that stops protecting its behaviour is noticed. Patches replace a function or method at
its definition and wherever it was imported by name, so the breakage reaches every caller.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

MUTANT_ENV = "MMGEN_MUTANT"


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str  # what goes wrong, in words
    apply: Callable[[pytest.MonkeyPatch], None]
    killers: tuple[str, ...]  # the tests (node ids) of which at least one must fail


def replace_everywhere(mp: pytest.MonkeyPatch, module_name: str, attr: str, replacement) -> None:
    """Set ``module.attr`` to ``replacement``, and every module-level name bound to the original
    (``from module import attr``) in the modules imported so far."""
    module = importlib.import_module(module_name)
    original = getattr(module, attr)
    mp.setattr(module, attr, replacement)
    for other in list(sys.modules.values()):
        names = [k for k, v in list(getattr(other, "__dict__", {}).items()) if v is original]
        for name in names:
            mp.setattr(other, name, replacement)


def wrap_method(mp: pytest.MonkeyPatch, cls, name: str, make_wrapper) -> None:
    mp.setattr(cls, name, make_wrapper(getattr(cls, name)))


# ---------------------------------------------------------------------------------- training


def resume_ignored(mp):
    replace_everywhere(mp, "mmgen.training.checkpoints", "resolve_resume", lambda *a, **k: None)


def accelerate_state_not_restored(mp):
    """``load_state`` keeps only the registered custom objects (step, generator, EMA): the
    model, optimizer and scheduler stay as freshly built."""
    from accelerate import Accelerator

    def make(load_state):
        def load_custom_objects_only(self, *args, **kwargs):
            fresh = [
                (obj, copy.deepcopy(obj.state_dict()))
                for obj in (*self._models, *self._optimizers, *self._schedulers)
            ]
            result = load_state(self, *args, **kwargs)
            for obj, state in fresh:
                obj.load_state_dict(state)
            return result

        return load_custom_objects_only

    wrap_method(mp, Accelerator, "load_state", make)


def accelerator_option(option: str, value):
    """A mutant that builds every ``Accelerator`` with ``option=value`` whatever was asked."""

    def apply(mp):
        from accelerate import Accelerator

        def make(init):
            def forced(self, *args, **kwargs):
                kwargs[option] = value
                init(self, *args, **kwargs)

            return forced

        wrap_method(mp, Accelerator, "__init__", make)

    return apply


def condition_dropout_ignored(mp):
    replace_everywhere(mp, "mmgen.sequence", "drop_condition", lambda ids, *a, **k: ids)


# -------------------------------------------------------------------------------- generation


def use_cache_ignored(mp):
    import mmgen.generation.loop as loop

    real = loop.generate_codes

    def always_cached(*args, **kwargs):
        kwargs["use_cache"] = True
        return real(*args, **kwargs)

    replace_everywhere(mp, "mmgen.generation.loop", "generate_codes", always_cached)


def guidance_ignored(mp):
    replace_everywhere(mp, "mmgen.generation.guidance", "mix_guidance", lambda c, u, s: c)


def cache_write_off_by_one(mp):
    """Each eager cache write lands one position early (the previous token's slot is
    overwritten, the group's last slot keeps stale values); compiled writes likewise."""
    import torch

    from mmgen.models.kv_cache import KVCache

    def make(update):
        def shifted(self, start, k, v):
            if isinstance(start, torch.Tensor):
                return update(self, (start - 1).clamp(min=0), k, v)
            write = max(start - 1, 0)
            self.k[:, :, write : write + k.shape[2]] = k
            self.v[:, :, write : write + k.shape[2]] = v
            end = start + k.shape[2]
            return self.k[:, :, :end], self.v[:, :, :end]

        return shifted

    wrap_method(mp, KVCache, "update", make)


# ----------------------------------------------------------------------------------- kernels


def kernel_mask_off_by_one(mp):
    """Every row's key bound reaches our Triton kernels one key too far (``<=`` for ``<``)."""
    import mmgen.kernels.triton_common as common

    real = common.kv_end_rows
    replace_everywhere(mp, "mmgen.kernels.triton_common", "kv_end_rows",
                       lambda *args: real(*args) + 1)  # fmt: skip


def next_scale_inputs_ignore_f_hat(mp):
    """Generation feeds every scale a zero latent (its level one-hot kept) instead of the
    downsampled f_hat of the scales before it; training still feeds the true inputs."""
    from mmgen.orders.next_scale import NextScaleOrder

    def make(group_inputs):
        def zero_latent(self, state, g):
            inputs = group_inputs(self, state, g).clone()
            inputs[..., : self.channels] = 0
            return inputs

        return zero_latent

    wrap_method(mp, NextScaleOrder, "group_inputs", make)


def shuffle_windows_column_major(mp):
    """Token-shuffle reads each s x s window column by column (and writes it back the same
    way), so a window's codes reach the merge and the head transposed."""
    from mmgen.orders.token_shuffle import TokenShuffleOrder

    def make(method, inverse):
        def transposed(self, codes):
            if not inverse:
                out = method(self, codes)
                s = self.window
                return out.view(*out.shape[:-1], s, s).transpose(-1, -2).reshape(out.shape)
            s = self.window
            flipped = codes.view(*codes.shape[:-1], s, s).transpose(-1, -2).reshape(codes.shape)
            return method(self, flipped)

        return transposed

    mp.setattr(TokenShuffleOrder, "shuffle", make(TokenShuffleOrder.shuffle, False))
    mp.setattr(TokenShuffleOrder, "unshuffle", make(TokenShuffleOrder.unshuffle, True))


TRAINING = "tests/training/test_training.py::"
MUTANTS = [
    Mutant("resume-ignored", "resume_from_checkpoint is ignored: a resumed run starts at step 0",
           resume_ignored,
           (TRAINING + "test_resume_from_latest_reproduces_uninterrupted_losses",)),
    Mutant("accelerate-state-not-restored",
           "a resume restores the step counter but not the model, optimizer and scheduler",
           accelerate_state_not_restored,
           (TRAINING + "test_resume_from_latest_reproduces_uninterrupted_losses",)),
    Mutant("compile-ignored", "training.compile builds the Accelerator with dynamo_backend 'no'",
           accelerator_option("dynamo_backend", "no"),
           (TRAINING + "test_compiled_training_matches_eager_losses",)),
    Mutant("mixed-precision-ignored", "training.mixed_precision is replaced by 'no'",
           accelerator_option("mixed_precision", "no"),
           (TRAINING + "test_bf16_mixed_precision_runs_the_training_forward_under_autocast",)),
    Mutant("accumulation-ignored", "the Accelerator steps the optimizer on every micro-batch",
           accelerator_option("gradient_accumulation_steps", 1),
           (TRAINING + "test_gradient_accumulation_steps_the_optimizer_once_per_step",)),
    Mutant("condition-dropout-ignored", "training never replaces a prompt by the empty one",
           condition_dropout_ignored,
           (TRAINING + "test_condition_dropout_feeds_the_empty_prompt_to_the_training_loss",)),
    Mutant("use-cache-ignored", "use_cache=False still decodes against the KV cache",
           use_cache_ignored,
           ("tests/generation/test_loop.py::"
            "test_pipeline_use_cache_false_recomputes_the_prefix_and_matches_the_cached_images",)),
    Mutant("guidance-ignored", "classifier-free guidance returns the conditional logits",
           guidance_ignored,
           ("tests/generation/test_loop.py::test_guidance_scale_one_equals_the_unguided_path",)),
    Mutant("cache-write-off-by-one", "the KV cache writes each group one position early",
           cache_write_off_by_one,
           ("tests/generation/test_loop.py::test_cached_generation_matches_full_recompute",)),
    Mutant("next-scale-inputs-ignore-f-hat",
           "next-scale generation feeds zero latents instead of the accumulated f_hat",
           next_scale_inputs_ignore_f_hat,
           ("tests/generation/test_loop.py::"
            "test_greedy_generation_matches_teacher_forcing_argmax[next_scale]",)),
    Mutant("shuffle-windows-column-major",
           "token-shuffle reads and writes each window column-major instead of raster",
           shuffle_windows_column_major,
           ("tests/orders/test_orders.py::"
            "test_token_shuffle_windows_round_trip_in_raster_order",)),
    Mutant("kernel-mask-off-by-one", "the Triton kernels let each row see one key past its end",
           kernel_mask_off_by_one,
           ("tests/kernels/test_group_causal_attention.py::"
            "test_triton_kernel_matches_fp64_reference",)),
]  # fmt: skip
BY_NAME = {m.name: m for m in MUTANTS}


def active() -> Mutant | None:
    name = os.environ.get(MUTANT_ENV)
    if not name:
        return None
    if name not in BY_NAME:
        raise pytest.UsageError(f"{MUTANT_ENV}={name!r}: no such mutant (known: {sorted(BY_NAME)})")
    return BY_NAME[name]


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    mutant = active()
    if mutant is not None:
        mutant.apply(pytest.MonkeyPatch())  # never undone: the process runs this mutant only
        print(f"mutant {mutant.name}: {mutant.breaks}", file=sys.stderr)
