"""Text-to-image pipeline: prompts (bytes or a learned vocabulary) -> group loop -> decoder."""

from __future__ import annotations

from typing import Any

import torch

from mmgen.pipelines.ar_image import ARImagePipeline
from mmgen.pipelines.outputs import ImagePipelineOutput


def _as_prompt_list(value, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(p, str) for p in value):
        return list(value)
    raise TypeError(f"{name} must be a str or a list of str, got {type(value).__name__}")


def prompt_ids(
    text_tokenizer, prompt, negative_prompt, per_prompt: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt and negative-prompt ids (B, T), each prompt repeated ``per_prompt`` times; no
    negative prompt is the empty one.

    Raises:
        TypeError / ValueError: for prompts that are not strings, or mismatched lists.
    """
    prompts = _as_prompt_list(prompt, "prompt")
    if not prompts:
        raise ValueError("prompt must not be an empty list")
    if negative_prompt is None:
        negatives = [""] * len(prompts)
    else:
        negatives = _as_prompt_list(negative_prompt, "negative_prompt")
        if len(negatives) == 1:
            negatives = negatives * len(prompts)
        if len(negatives) != len(prompts):
            raise ValueError(
                f"negative_prompt has {len(negatives)} entries but prompt has {len(prompts)}"
            )
    text_ids = text_tokenizer([p for p in prompts for _ in range(per_prompt)])  # (B, T)
    uncond_ids = text_tokenizer([p for p in negatives for _ in range(per_prompt)])
    return text_ids, uncond_ids


class TextToImagePipeline(ARImagePipeline):
    """Generate images from text prompts with an autoregressive transformer and a VQ decoder.

    Args:
        transformer: the :class:`ARTransformer`.
        vq: the VQ image tokenizer (``mmgen.tokenizers.vq.VQModel``).
        text_tokenizer: a ``ByteTokenizer`` (``mmgen.tokenizers.text``) or a
            ``TrainedTextTokenizer`` (``mmgen.tokenizers.trained_text``, saved as tokenizer.json).
        image_size: output height and width in pixels.
        sampling: default sampling knobs used when ``__call__`` leaves them out.
        training_config: the recipe that trained the model, saved alongside.
    """

    condition_key = "text_tokenizer"

    @property
    def text_tokenizer(self):
        return self.condition_tokenizer

    default_condition_tokenizer = "ByteTokenizer"

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
        num_inference_steps: int | None = None,
        num_candidates: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        use_cache: bool = True,
        show_progress: bool | None = None,
        callback_on_step_end=None,
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
            temperature (`float`, *optional*): softmax temperature of a categorical head, the
                starting noise's scale of a flow head; 0 is greedy (deterministic).
            top_k (`int`, *optional*): keep the k most likely codes (0 keeps all).
            top_p (`float`, *optional*): nucleus sampling mass in (0, 1].
            num_inference_steps (`int`, *optional*): Euler steps of a flow head per group
                (continuous orders; categorical heads ignore it).
            num_candidates (`int`, *optional*): images drawn per output; the pipeline's scorer
                keeps the one it rates highest (reranking). 1 draws one; > 1 needs a pipeline
                with a ``scorer``. Defaults to the pipeline's saved default.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): source of every
                random draw; a list gives one generator per image (image i then depends on
                ``generator[i]`` only). A seed is ``torch.Generator().manual_seed(0)``.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or
                ``"latent"`` (the (B, N) code ids, or (B, N, C) latents of a continuous
                tokenizer, not decoded).
            return_dict (`bool`, defaults to True): return an :class:`ImagePipelineOutput`
                rather than a tuple.
            use_cache (`bool`, defaults to True): False recomputes every step (reference path).
            show_progress (`bool`, *optional*): a progress bar over the groups; by default
                shown unless ``set_progress_bar_config(disable=True)`` (diffusers' switch).
            callback_on_step_end (`Callable`, *optional*): called after every group as
                ``callback_on_step_end(step, num_groups, state)``; ``state.codes`` holds the
                (B, N) codes so far (diffusers' pattern; streaming and progress use it).

        Examples:
            >>> import torch
            >>> from mmgen import TextToImagePipeline
            >>> pipe = TextToImagePipeline.from_pretrained("shapes-t2i")
            >>> out = pipe("a red circle to the left of a blue square", num_images_per_prompt=4,
            ...            generator=torch.Generator().manual_seed(0))
            >>> out.images[0].save("sample.png")
        """
        self.check_common_args(
            num_images_per_prompt, output_type, generator, "num_images_per_prompt"
        )
        sampling = self.resolve_sampling(
            guidance_scale=guidance_scale,
            guidance_schedule=guidance_schedule,
            guidance_cutoff=guidance_cutoff,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            num_inference_steps=num_inference_steps,
            num_candidates=num_candidates,
        )
        text_ids, uncond_ids = prompt_ids(
            self.text_tokenizer, prompt, negative_prompt, num_images_per_prompt
        )
        return self.generate_images(
            text_ids,
            uncond_ids,
            sampling,
            generator=generator,
            use_cache=use_cache,
            show_progress=show_progress,
            output_type=output_type,
            return_dict=return_dict,
            callback_on_step_end=callback_on_step_end,
        )
