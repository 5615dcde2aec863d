"""Rectified flow: the one core every flow head shares (FlowAR, FAR, CLEAR, MAR-style heads).

With data ``x``, noise ``e ~ N(0, I)`` and time ``t`` in [0, 1] (t = 1 is data):

    x_t = (1 - t) * e + t * x          v*(x_t, t) = x - e            (the velocity target)

Training regresses a predicted velocity on ``x - e`` at times ``t`` drawn uniform (the default)
or logit-normal (``sigmoid(n)``, ``n ~ N(0, 1)``: SD3's and FAR's, mid times more often, the
ends less); sampling integrates
``dx/dt = v(x, t)`` from ``x_0 = temperature * e`` to ``t = 1`` with Euler steps. Under
classifier-free guidance the velocity is mixed like logits: ``v_c + (s - 1) (v_c - v_u)``.
Every random draw comes from the caller's ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mmgen.generation.guidance import mix_guidance
from mmgen.utils.checks import check_int

#: velocity(x_t (N, ...), t (N,)) -> (N, ...); under guidance N is twice the batch (the
#: conditional rows first, then the unconditional ones)
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(1 - t) * noise + t * x`` with ``t`` (N,) broadcast over the trailing dims of (N, ...)."""
    t = t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return (1 - t) * noise + t * x


def draw_noise(shape, generator, device, dtype=torch.float32):
    """Standard normal noise drawn where the generator lives, then moved to ``device``. A list
    of generators (diffusers' one per output) draws equal consecutive shares of dim 0 (one
    sample's rows each), each from its own generator."""
    if isinstance(generator, (list, tuple)):
        if shape[0] % len(generator):
            raise ValueError(f"{len(generator)} generators for {shape[0]} rows of noise")
        share = (shape[0] // len(generator), *shape[1:])
        return torch.cat([draw_noise(share, g, device, dtype) for g in generator])
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


#: how training draws flow times (see the module docstring)
TIME_SAMPLINGS = ("uniform", "logit_normal")


def draw_training_noise(
    shape: tuple[int, ...], generator: torch.Generator | None, device, times: str = "uniform"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The draws of one flow-matching loss over data of ``shape`` (N, ...): noise of that
    shape and one time per row (N,) drawn as ``times`` says, both from ``generator``. Drawn
    outside the model's forward (a generator inside a compiled graph breaks it)."""
    noise = draw_noise(shape, generator, device)
    return noise, draw_times(shape[0], generator, device, times)


def draw_times(
    num: int, generator: torch.Generator | None, device, times: str = "uniform"
) -> torch.Tensor:
    """``num`` flow times in (0, 1), drawn where the generator lives: ``"uniform"`` or
    ``"logit_normal"`` (``sigmoid`` of a standard normal)."""
    if times not in TIME_SAMPLINGS:
        raise ValueError(f"flow times must be one of {list(TIME_SAMPLINGS)}, got {times!r}")
    where = generator.device if generator is not None else device
    if times == "logit_normal":
        return torch.sigmoid(torch.randn(num, generator=generator, device=where)).to(device)
    return torch.rand(num, generator=generator, device=where).to(device)


def flow_matching_loss(
    velocity: VelocityFn,
    x: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error (float32) of ``velocity(x_t, t)`` against ``x - noise``, with
    ``x_t = (1 - t) * noise + t * x`` (``noise`` like ``x``, ``t`` (N,)). With ``weight`` (N,)
    (>= 0 per unit: 0 or 1 keeps or drops a unit) it is the weighted mean over the units
    (0 when every weight is 0)."""
    x = x.float()
    predicted = velocity(interpolate(x, noise, t), t)
    error = (predicted.float() - (x - noise)).pow(2)
    if weight is None:
        return error.mean()
    per_unit = error.reshape(error.shape[0], -1).mean(dim=1)  # (N,)
    return (per_unit * weight).sum() / weight.sum().clamp_min(1e-12)


def euler_sample(
    velocity: VelocityFn,
    shape: tuple[int, ...],
    *,
    num_steps: int,
    generator: torch.Generator | list[torch.Generator] | None = None,
    temperature: float = 1.0,
    guidance_scale: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Integrate the flow from ``temperature * noise`` (t = 0) to data (t = 1) in ``num_steps``
    Euler steps of equal size; returns a float32 tensor of ``shape`` (B, ...).

    With ``guidance_scale != 1`` the velocity is called on the doubled batch (the same x for the
    conditional and the unconditional half) and mixed; at 1 it sees the B rows alone, so
    guidance 1 is exactly the unguided path.
    """
    check_int("num_inference_steps", num_steps)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    x = draw_noise(shape, generator, device) * temperature
    guided = guidance_scale != 1.0
    times = torch.linspace(0.0, 1.0, num_steps + 1, device=device)
    for k in range(num_steps):
        t = times[k].expand(shape[0] * (2 if guided else 1))
        if guided:
            both = velocity(torch.cat([x, x]), t).float()
            v = mix_guidance(both[: shape[0]], both[shape[0] :], guidance_scale)
        else:
            v = velocity(x, t).float()
        x = x + (times[k + 1] - times[k]) * v
    return x
