"""Text-to-image pipeline: byte prompts -> transformer (group loop) -> VQ decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


class TextToImagePipeline:
    """Generate images from text prompts with an autoregressive transformer and a VQ decoder.

    Args:
        transformer: the :class:`ARTransformer`.
        vq: the VQ image tokenizer (``mmgen.tokenizers.vq.VQModel``).
        text_tokenizer: a ``mmgen.tokenizers.text.ByteTokenizer``.
        image_size: output height and width in pixels.
        sampling: default sampling knobs used when ``__call__`` leaves them out.
        training_config: the recipe that trained the model, saved alongside.
    """

    def __init__(
        self,
        transformer: ARTransformer,
        vq,
        text_tokenizer,
        *,
        image_size: int,
        sampling: SamplingConfig | None = None,
        training_config: dict | None = None,
    ):
        self.transformer = transformer.eval()
        self.vq = vq.eval()
        self.text_tokenizer = text_tokenizer
        self.image_size = image_size
        self.sampling = sampling or SamplingConfig()
        self.training_config = training_config
        self.space = TokenSpace(text_tokenizer.vocab_size, vq.codebook_size)
        if transformer.config.vocab_size != self.space.vocab_size:
            raise ValueError(
                f"transformer vocab_size {transformer.config.vocab_size} does not match text + "
                f"codes + start = {self.space.vocab_size}"
            )
        if transformer.config.num_codes != vq.codebook_size:
            raise ValueError(
                f"transformer num_codes {transformer.config.num_codes} != VQ codebook size "
                f"{vq.codebook_size}"
            )
        self.layout: SequenceLayout = text_image_layout(
            text_tokenizer.max_length,
            vq.grid_shape(image_size, image_size),
            flat_positions=transformer.uses_flat_positions,
        )

    # ------------------------------------------------------------------ devices and files

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move both models (like ``nn.Module.to``); returns self."""
        self.transformer.to(device=device, dtype=dtype)
        self.vq.to(device=device, dtype=dtype)
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
            "text_tokenizer": self.text_tokenizer.config,
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
    ) -> TextToImagePipeline:
        """Load a folder written by :meth:`save_pretrained` (no network, no pickle).

        Raises:
            CheckpointError: naming the file and the problem when something is missing,
                corrupt or inconsistent.
        """
        from mmgen.tokenizers.text import ByteTokenizer
        from mmgen.tokenizers.vq import VQModel

        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: pipeline folder not found")
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
                ByteTokenizer(**index["text_tokenizer"]),
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

    def _check_inputs(self, prompt, negative_prompt, num_images_per_prompt, output_type):
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        else:
            raise TypeError(f"prompt must be a str or a list of str, got {type(prompt).__name__}")
        if not prompts:
            raise ValueError("prompt must not be an empty list")
        if negative_prompt is None:
            negatives = [""] * len(prompts)
        elif isinstance(negative_prompt, str):
            negatives = [negative_prompt] * len(prompts)
        elif isinstance(negative_prompt, (list, tuple)) and all(
            isinstance(p, str) for p in negative_prompt
        ):
            negatives = list(negative_prompt)
            if len(negatives) != len(prompts):
                raise ValueError(
                    f"negative_prompt has {len(negatives)} entries but prompt has {len(prompts)}"
                )
        else:
            raise TypeError(
                "negative_prompt must be None, a str or a list of str, got "
                f"{type(negative_prompt).__name__}"
            )
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int):
            raise TypeError(
                f"num_images_per_prompt must be an int, got {type(num_images_per_prompt).__name__}"
            )
        if num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be >= 1, got {num_images_per_prompt}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(
                f"output_type must be one of {list(OUTPUT_TYPES)}, got {output_type!r}"
            )
        return prompts, negatives

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        guidance_scale: float | None = None,
        guidance_schedule: str | None = None,
        guidance_cutoff: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        use_cache: bool = True,
        show_progress: bool = False,
    ) -> ImagePipelineOutput | tuple[Any]:
        """Generate images for one prompt or a list of prompts.

        Args:
            prompt (`str` or `list[str]`): what to draw; ``""`` is the unconditional prompt.
            negative_prompt (`str` or `list[str]`, *optional*): the guidance's other half
                (defaults to the empty prompt).
            num_images_per_prompt (`int`, defaults to 1): images per prompt (>= 1).
            guidance_scale (`float`, *optional*): classifier-free guidance scale (>= 0; 1 turns
                guidance off). Defaults to the pipeline's saved default.
            guidance_schedule (`str`, *optional*): ``"constant"``, ``"linear"`` (1 -> scale
                over the groups) or ``"cutoff"`` (scale for ``guidance_cutoff`` groups, then 1).
            guidance_cutoff (`int`, *optional*): groups guided under ``"cutoff"``.
            temperature (`float`, *optional*): softmax temperature; 0 is greedy.
            top_k (`int`, *optional*): keep the k most likely codes (0 keeps all).
            top_p (`float`, *optional*): nucleus sampling mass in (0, 1].
            generator (`torch.Generator`, *optional*): source of every random draw.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"`` or ``"pt"``.
            return_dict (`bool`, defaults to True): return an :class:`ImagePipelineOutput`
                rather than a tuple.
            use_cache (`bool`, defaults to True): False recomputes every step (reference path).
            show_progress (`bool`, defaults to False): a progress bar over the groups.

        Examples:
            >>> import torch
            >>> from mmgen import TextToImagePipeline
            >>> pipe = TextToImagePipeline.from_pretrained("path/to/folder")
            >>> out = pipe("a red circle to the left of a blue square", num_images_per_prompt=4,
            ...            guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
            >>> out.images[0].save("sample.png")
        """
        prompts, negatives = self._check_inputs(
            prompt, negative_prompt, num_images_per_prompt, output_type
        )
        d = self.sampling
        sampling = SamplingConfig(
            guidance_scale=d.guidance_scale if guidance_scale is None else guidance_scale,
            guidance_schedule=d.guidance_schedule
            if guidance_schedule is None
            else guidance_schedule,
            guidance_cutoff=d.guidance_cutoff if guidance_cutoff is None else guidance_cutoff,
            temperature=d.temperature if temperature is None else temperature,
            top_k=d.top_k if top_k is None else top_k,
            top_p=d.top_p if top_p is None else top_p,
        )
        check_guidance_args(
            sampling.guidance_scale, sampling.guidance_schedule, sampling.guidance_cutoff
        )
        check_sampling_args(sampling.temperature, sampling.top_k, sampling.top_p)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")

        n = num_images_per_prompt
        text_ids = self.text_tokenizer([p for p in prompts for _ in range(n)])  # (B, T)
        uncond_ids = self.text_tokenizer([p for p in negatives for _ in range(n)])
        progress = None
        if show_progress:
            from tqdm.auto import tqdm

            progress = lambda it: tqdm(it, desc="groups", leave=False)
        codes = generate_codes(
            self.transformer,
            self.layout,
            self.space,
            text_ids,
            uncond_ids,
            sampling,
            generator=generator,
            use_cache=use_cache,
            progress_bar=progress,
        )  # (B, N)
        gh, gw = self.layout.grid
        images = self.vq.decode(codes.view(-1, gh, gw).to(self.vq_device))  # (B, 3, H, W)
        images = to_output_type(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @property
    def vq_device(self) -> torch.device:
        return next(self.vq.parameters()).device
