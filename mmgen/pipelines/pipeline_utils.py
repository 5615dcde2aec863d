"""What a diffusers user reaches for on any pipeline: progress bars, ``components``,
``config``, ``device``, ``dtype`` and ``to(device, dtype)`` (``DiffusionPipeline``'s names)."""

from __future__ import annotations

from typing import Any

import torch


class PipelineSurface:
    """diffusers' ``DiffusionPipeline`` conveniences for a pipeline whose parts are named by
    :meth:`component_names` (constructor argument -> attribute)."""

    def component_names(self) -> dict[str, str]:
        """Constructor argument name -> attribute name of each component."""
        raise NotImplementedError

    @property
    def components(self) -> dict[str, Any]:
        """The pipeline's parts by their constructor names (diffusers' ``components``), so
        ``type(pipe)(**pipe.components, image_size=...)`` rebuilds it."""
        return {key: getattr(self, attr) for key, attr in self.component_names().items()}

    @property
    def config(self) -> dict[str, Any]:
        """What ``save_pretrained`` writes to model_index.json (a copy)."""
        return self.model_index()

    def model_index(self) -> dict[str, Any]:
        raise NotImplementedError

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in self.components.values() if isinstance(m, torch.nn.Module)]

    @property
    def device(self) -> torch.device:
        """Where the first model's weights are."""
        return next(self.modules()[0].parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The first model's floating-point dtype."""
        return next(self.modules()[0].parameters()).dtype

    def to(self, *args, **kwargs):
        """Move every model, like ``nn.Module.to``: ``to(device)``, ``to(dtype)``,
        ``to(device, dtype)`` or keywords ``device=``, ``dtype=``. Returns self."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            elif isinstance(arg, (str, torch.device, int)) and not isinstance(arg, bool):
                device = arg
            else:
                raise TypeError(f"to() takes a device and/or a torch.dtype, got {arg!r}")
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"to(): a pipeline's weights need a floating-point dtype, got {dtype}")
        for module in self.modules():
            module.to(device=device, dtype=dtype)
        self.after_move()
        return self

    def after_move(self) -> None:
        """Hook: what holds device state (compiled graphs, caches) rebuilds here."""

    def set_progress_bar_config(self, **kwargs) -> None:
        """tqdm options for this pipeline's progress bars (``disable=True`` silences them)."""
        self._progress_bar_config = dict(kwargs)

    def progress_bar(self, iterable=None, total: int | None = None, desc: str | None = None):
        """A tqdm bar over ``iterable`` or of ``total`` steps labelled ``desc``, with the
        configured options (a configured ``desc`` wins)."""
        from tqdm.auto import tqdm

        options = {"leave": False, "desc": desc, **getattr(self, "_progress_bar_config", {})}
        if iterable is not None:
            return tqdm(iterable, **options)
        return tqdm(total=total, **options)
