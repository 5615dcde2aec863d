"""Shared machinery of the image pipelines: condition tokens -> group loop -> VQ decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from mmgen.generation.guidance import check_guidance_args
from mmgen.generation.logits_processors import check_sampling_args
from mmgen.generation.loop import SamplingConfig, generate_codes
from mmgen.models.transformer import ARTransformer
from mmgen.pipelines.outputs import OUTPUT_TYPES, ImagePipelineOutput, to_output_type
from mmgen.sequence import SequenceLayout, TokenSpace, text_image_layout
from mmgen.utils.config import from_dict, to_dict
from mmgen.utils.serialization import (
    CheckpointError,
    load_module,
    read_json,
    save_module,
    write_json,
)

MODEL_INDEX = "model_index.json"
TRAINING_CONFIG = "training_config.yaml"


class ARImagePipeline:
    """Base of :class:`TextToImagePipeline` and :class:`ClassToImagePipeline`.

    A condition segment (prompt bytes or one class token) is the first group; the image codes
    follow in next-token order.

    Args:
        transformer: the :class:`ARTransformer`.
        vq: the VQ image tokenizer (``mmgen.tokenizers.vq.VQModel``).
        condition_tokenizer: turns conditions into ids (``ByteTokenizer`` or
            ``ClassLabelTokenizer``).
        image_size: output height and width in pixels.
        sampling: default sampling knobs used when ``__call__`` leaves them out.
        training_config: the recipe that trained the model, saved alongside.
    """

    #: key of the condition tokenizer's config in model_index.json
    condition_key: ClassVar[str]

    def __init__(
        self,
        transformer: ARTransformer,
        vq,
        condition_tokenizer,
        *,
        image_size: int,
        sampling: SamplingConfig | None = None,
        training_config: dict | None = None,
    ):
        self.transformer = transformer.eval()
        self.vq = vq.eval()
        self.condition_tokenizer = condition_tokenizer
        self.image_size = image_size
        self.sampling = sampling or SamplingConfig()
        self.training_config = training_config
        self.decoder = None  # set by enable_compile()
        self.space = TokenSpace(condition_tokenizer.vocab_size, vq.codebook_size)
        if transformer.config.vocab_size != self.space.vocab_size:
            raise ValueError(
                f"transformer vocab_size {transformer.config.vocab_size} does not match "
                f"condition + codes + start = {self.space.vocab_size}"
            )
        if transformer.config.num_codes != vq.codebook_size:
            raise ValueError(
                f"transformer num_codes {transformer.config.num_codes} != VQ codebook size "
                f"{vq.codebook_size}"
            )
        self.layout: SequenceLayout = text_image_layout(
            condition_tokenizer.max_length,
            vq.grid_shape(image_size, image_size),
            flat_positions=transformer.uses_flat_positions,
        )

    @classmethod
    def make_condition_tokenizer(cls, config: dict):
        raise NotImplementedError

    # ------------------------------------------------------------------ devices and files

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def vq_device(self) -> torch.device:
        return next(self.vq.parameters()).device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move both models (like ``nn.Module.to``); returns self."""
        self.transformer.to(device=device, dtype=dtype)
        self.vq.to(device=device, dtype=dtype)
        if self.decoder is not None:  # its caches and graphs belong to the old device
            self.enable_compile(self.decoder.mode)
        return self

    def enable_compile(self, mode: str | None = None):
        """Decode each group with a compiled static-shape step (``torch.compile``; CUDA graphs
        with the default ``mode`` on GPUs) against caches that persist across calls. The first
        call compiles (seconds to a minute); later ones replay. Returns self."""
        from mmgen.generation.compiled import CompiledDecoder

        self.decoder = CompiledDecoder(self.transformer, mode)
        return self

    def disable_compile(self):
        """Back to the eager group loop; returns self."""
        self.decoder = None
        return self

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``model_index.json``, ``transformer/``, ``vq/`` (safetensors + JSON config)
        and the training recipe as ``training_config.yaml``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_module(self.transformer, folder / "transformer")
        save_module(self.vq, folder / "vq")
        index = {
            "_class_name": type(self).__name__,
            "image_size": self.image_size,
            self.condition_key: self.condition_tokenizer.config,
            "sampling": to_dict(self.sampling),
            "transformer": "ARTransformer",
            "vq": "VQModel",
        }
        write_json(folder / MODEL_INDEX, index)
        if self.training_config is not None:
            import yaml

            (folder / TRAINING_CONFIG).write_text(yaml.safe_dump(self.training_config))
        return folder

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, torch_dtype: torch.dtype | None = None, device=None
    ):
        """Load a built-in model by name (e.g. ``"shapes-t2i"``) or a folder written by
        :meth:`save_pretrained` (no network, no pickle).

        Raises:
            CheckpointError: naming the file and the problem when something is missing,
                corrupt or inconsistent.
        """
        from mmgen.builtin import resolve_model_path
        from mmgen.tokenizers.vq import VQModel

        try:
            folder = resolve_model_path(path)
        except FileNotFoundError as err:
            raise CheckpointError(f"{path}: pipeline folder not found ({err})") from None
        index = read_json(folder / MODEL_INDEX)
        if index.get("_class_name") != cls.__name__:
            found = index.get("_class_name")
            raise CheckpointError(f"{folder / MODEL_INDEX}: holds a {found!r}, not {cls.__name__}")
        training_config = None
        if (folder / TRAINING_CONFIG).is_file():
            import yaml

            training_config = yaml.safe_load((folder / TRAINING_CONFIG).read_text())
        try:
            pipe = cls(
                load_module(ARTransformer, folder / "transformer", torch_dtype=torch_dtype),
                load_module(VQModel, folder / "vq", torch_dtype=torch_dtype),
                cls.make_condition_tokenizer(index[cls.condition_key]),
                image_size=int(index["image_size"]),
                sampling=from_dict(SamplingConfig, index.get("sampling", {})),
                training_config=training_config,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"{folder / MODEL_INDEX}: inconsistent pipeline ({err})"
            ) from None
        return pipe.to(device) if device is not None else pipe

    # ------------------------------------------------------------------ generation

    @staticmethod
    def check_common_args(num_images: int, output_type: str, generator, count_name: str) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int):
            raise TypeError(f"{count_name} must be an int, got {type(num_images).__name__}")
        if num_images < 1:
            raise ValueError(f"{count_name} must be >= 1, got {num_images}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(
                f"output_type must be one of {list(OUTPUT_TYPES)}, got {output_type!r}"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")

    def resolve_sampling(self, **overrides: Any) -> SamplingConfig:
        """The saved defaults with the given (non-None) knobs replaced, validated."""
        d = self.sampling
        values = {name: getattr(d, name) for name in d.__dataclass_fields__}
        values.update({k: v for k, v in overrides.items() if v is not None})
        sampling = SamplingConfig(**values)
        check_guidance_args(
            sampling.guidance_scale, sampling.guidance_schedule, sampling.guidance_cutoff
        )
        check_sampling_args(sampling.temperature, sampling.top_k, sampling.top_p)
        return sampling

    def generate_images(
        self,
        condition_ids: torch.Tensor,
        uncond_ids: torch.Tensor,
        sampling: SamplingConfig,
        *,
        generator: torch.Generator | None,
        use_cache: bool,
        show_progress: bool,
        output_type: str,
        return_dict: bool,
    ) -> ImagePipelineOutput | tuple[Any]:
        """Condition ids (B, T) -> decoded images in the requested output type."""
        progress = None
        if show_progress:
            from tqdm.auto import tqdm

            progress = lambda it: tqdm(it, desc="groups", leave=False)
        codes = generate_codes(
            self.transformer,
            self.layout,
            self.space,
            condition_ids,
            uncond_ids,
            sampling,
            generator=generator,
            use_cache=use_cache,
            progress_bar=progress,
            decoder=self.decoder,
        )  # (B, N)
        gh, gw = self.layout.grid
        images = self.vq.decode(codes.view(-1, gh, gw).to(self.vq_device))  # (B, C, H, W)
        images = to_output_type(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)
