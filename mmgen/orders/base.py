"""The order plug-in: which rows each group has, what they are fed, what they predict.

An order turns a tokenizer's codes into one sample's sequence and back. It owns:

* ``layout``: the :class:`~mmgen.sequence.SequenceLayout` (condition segment, then one group
  per generation step; group ids, (t, h, w) positions, kv_end);
* ``input_config()`` / ``head_config()``: the input adapter and head its rows need;
* ``training_inputs(codes)``: teacher forcing, the inputs and targets of every generated row;
* at generation, ``start(B)`` -> a :class:`GenerationState`, ``group_inputs(state, g)``
  (built only from what groups < g produced), ``take(state, g, sampled)`` and ``finish``.

Codes are the tokenizer's flat ids (B, N), N = ``token_layout.num_tokens``, or for a continuous
tokenizer (KL) its latents (B, N, C) in raster order (``TokenLayout.flatten``). One generation loop
(:func:`mmgen.generation.loop.generate_codes`) and one training loss serve every order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from mmgen.sequence import SequenceLayout
from mmgen.utils.config import ConfigError


@dataclass
class GenerationState:
    """What a generation has produced so far (passed to the per-group callback).

    Attributes:
        codes: (B, N) flat codes, or (B, N, C) latents for a continuous tokenizer; rows of
            groups not generated yet hold 0.
        done: groups generated so far.
        extra: order-specific running values (e.g. next-scale's accumulated ``f_hat``).
    """

    codes: torch.Tensor
    done: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Order:
    """Base class of generation orders (see the module docstring).

    Args:
        tokenizer: the image tokenizer (reports ``token_layout(height, width)``).
        image_size: image height and width in pixels.
        condition_length: rows of the condition segment.
        flat_positions: 1-D RoPE: every row at t = h = w = its index.
        **options: the order's own config values (``order.<name>`` in recipes).
    """

    #: the name recipes and model_index.json use (``order: {name: ...}``)
    name: ClassVar[str] = ""
    #: whether :meth:`noised_inputs` is implemented (``training.context_noise``)
    takes_context_noise: ClassVar[bool] = False

    def __init__(
        self, tokenizer, image_size: int, condition_length: int, *, flat_positions: bool = False
    ):
        self.tokenizer = tokenizer
        if not callable(getattr(tokenizer, "token_layout", None)):
            raise ConfigError(
                f"order {self.name}: the tokenizer {type(tokenizer).__name__} has no "
                "token_layout(height, width) method (see mmgen.tokenizers.layout.TokenLayout)"
            )
        try:
            self.token_layout = self.tokenizer_layout(tokenizer, image_size)
        except ValueError as err:
            raise ConfigError(f"order {self.name}: {err}") from None
        self.image_size = image_size
        self.condition_length = condition_length
        self.flat_positions = flat_positions
        self.layout: SequenceLayout  # set by subclasses

    @staticmethod
    def tokenizer_layout(tokenizer, size: int):
        """The tokenizer's layout of one sample of ``size`` (an image's side in pixels; an
        audio order reads it as the clip's samples)."""
        return tokenizer.token_layout(size, size)

    # what the rows need
    def input_config(self) -> dict:
        raise NotImplementedError

    def head_config(self) -> dict:
        raise NotImplementedError

    def config(self) -> dict:
        """This order as a config dict (``name`` + options), as saved in model_index.json."""
        return {"name": self.name}

    # teacher forcing
    def training_inputs(self, codes_BN: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of the generated rows (B, rows, ...), in group order."""
        raise NotImplementedError

    @property
    def first_output_groups(self) -> int:
        """Generation groups that make the first thing the order outputs, the ones
        ``training.first_group_weight`` weighs: 1 (a next-frame clip with first-frame scales:
        the scales and frame 0)."""
        return 1

    def noised_inputs(self, inputs: torch.Tensor, sigma_B: torch.Tensor, generator) -> torch.Tensor:
        """The teacher-forcing ``inputs`` with the generated rows they feed noised (standard
        deviation ``sigma_B[b]`` for sample b; ``training.context_noise``); orders that have
        one set ``takes_context_noise`` (the training task refuses the option for the
        others with a ConfigError)."""
        raise NotImplementedError(f"the {self.name} order has no context noise")

    def replaced_codes(self, inputs: torch.Tensor, rate_B: torch.Tensor, generator) -> torch.Tensor:
        """Context noise of a discrete order: every fed code of sample b (all but the start
        row 0) replaced, with probability ``rate_B[b]``, by a code drawn uniformly from the
        codebook; ``inputs`` (B, L) or (B, L, k) integer codes."""
        where = generator.device if generator is not None else inputs.device
        fed = inputs[:, 1:]  # (B, L - 1, ...): row 0 is the start token
        rate = rate_B.view(-1, *([1] * (fed.dim() - 1))).to(where)  # (B, 1, ...)
        replace = torch.rand(fed.shape, generator=generator, device=where) < rate
        random = torch.randint(self.token_layout.codebook_size, fed.shape, generator=generator,
                               device=where)  # fmt: skip
        fed = torch.where(replace.to(inputs.device), random.to(inputs.device), fed)
        return torch.cat([inputs[:, :1], fed], dim=1)

    # generation
    def start(self, batch_size: int, device: torch.device) -> GenerationState:
        """Nothing generated yet: zero codes (B, N), or zero latents (B, N, C) for a continuous
        tokenizer."""
        layout = self.token_layout
        return GenerationState(
            codes=torch.zeros(layout.token_shape(batch_size), dtype=layout.token_dtype,
                              device=device)
        )  # fmt: skip

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        raise NotImplementedError

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        raise NotImplementedError

    def given_samples(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat tokens of the first groups -> what the head samples for them (the ``given`` of
        :func:`~mmgen.generation.loop.generate_codes`); the same tensor for most orders."""
        return tokens

    def finish(self, state: GenerationState) -> torch.Tensor:
        """(B, N) flat codes of a finished generation."""
        return state.codes

    @property
    def num_groups(self) -> int:
        return len(self.layout.image_groups)

    def check_codes(self, codes_BN: torch.Tensor) -> None:
        """Raise unless ``codes_BN`` are flat tokens of this layout: (B, N) codes or (B, N, C)
        latents."""
        layout = self.token_layout
        expected = layout.token_shape(codes_BN.shape[0])
        if tuple(codes_BN.shape) != expected:
            what = "latents" if layout.is_continuous else "flat codes"
            shape = ", ".join(["B", *map(str, expected[1:])])
            raise ValueError(f"expected ({shape}) {what}, got {tuple(codes_BN.shape)}")


ORDERS: dict[str, str] = {
    "next_token": "mmgen.orders.next_token:NextTokenOrder",
    "next_scale": "mmgen.orders.next_scale:NextScaleOrder",
    "token_shuffle": "mmgen.orders.token_shuffle:TokenShuffleOrder",
    "continuous_next_scale": "mmgen.orders.continuous_next_scale:ContinuousNextScaleOrder",
    "next_frequency": "mmgen.orders.next_frequency:NextFrequencyOrder",
    "next_frame": "mmgen.orders.next_frame:NextFrameOrder",
    "next_latent": "mmgen.orders.next_latent:NextLatentOrder",
}


def build_order(
    spec: dict | None,
    tokenizer,
    image_size: int,
    condition_length: int,
    *,
    flat_positions: bool = False,
) -> Order:
    """The order a config dict names: ``{"name": "next_scale"}``, ``{"name": "token_shuffle",
    "window": 2}``, or ``{"name": "my_package.orders:BlockOrder", ...}`` for an order defined
    outside mmgen. None means next-token.

    Raises:
        ConfigError: naming ``order.name`` or the order's bad key.
    """
    from mmgen.registry import resolve_named

    spec = dict(spec or {"name": "next_token"})
    name = spec.pop("name", None)
    cls = resolve_named(name, ORDERS, "order.name", "order ")
    try:
        return cls(tokenizer, image_size, condition_length, flat_positions=flat_positions, **spec)
    except TypeError as err:
        raise ConfigError(f"order ({name}): {err}") from None
