"""Class-conditional image pipeline: one class token -> transformer (group loop) -> VQ decoder."""

from __future__ import annotations

from typing import Any

import torch

from mmgen.pipelines.ar_image import ARImagePipeline
from mmgen.pipelines.outputs import ImagePipelineOutput


class ClassToImagePipeline(ARImagePipeline):
    """Generate images of given classes (e.g. the built-in ``digits`` task).

    Args:
        transformer: the :class:`ARTransformer`.
        vq: the VQ image tokenizer.
        class_tokenizer: a ``mmgen.tokenizers.label.ClassLabelTokenizer``.
        image_size: output height and width in pixels.
        sampling: default sampling knobs.
        training_config: the recipe that trained the model.
    """

    condition_key = "class_tokenizer"

    default_condition_tokenizer = "ClassLabelTokenizer"

    @torch.no_grad()
    def __call__(
        self,
        class_labels: int | list[int],
        num_images_per_class: int | None = None,
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
        num_images_per_prompt: int | None = None,
    ) -> ImagePipelineOutput | tuple[Any]:
        """Generate ``num_images_per_class`` images for each label in ``class_labels``.

        Args:
            class_labels (`int` or `list[int]`): classes to draw, each in ``[0, num_classes)``.
            num_images_per_class (`int`, defaults to 1): images per label.
            num_images_per_prompt (`int`, *optional*): the same, under diffusers' name (give
                one of the two).
            Other arguments as in :meth:`TextToImagePipeline.__call__`; guidance mixes with the
            null class.

        Examples:
            >>> import torch
            >>> from mmgen.pipelines.class_to_image import ClassToImagePipeline
            >>> pipe = ClassToImagePipeline.from_pretrained("path/to/folder")
            >>> images = pipe([0, 1, 2], generator=torch.Generator().manual_seed(0)).images
        """
        labels = [class_labels] if isinstance(class_labels, int) else class_labels
        if not isinstance(labels, (list, tuple)) or not labels:
            raise TypeError(
                f"class_labels must be an int or a non-empty list of int, got {class_labels!r}"
            )
        if num_images_per_class is not None and num_images_per_prompt is not None:
            if num_images_per_class != num_images_per_prompt:
                raise ValueError(
                    f"num_images_per_class={num_images_per_class} and num_images_per_prompt="
                    f"{num_images_per_prompt} disagree: give one of them"
                )
        if num_images_per_class is None:
            num_images_per_class = 1 if num_images_per_prompt is None else num_images_per_prompt
        self.check_common_args(num_images_per_class, output_type, generator, "num_images_per_class")
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
        tokenizer = self.condition_tokenizer
        rows = [label for label in labels for _ in range(num_images_per_class)]
        class_ids = tokenizer(rows)  # (B, 1); raises naming a bad label
        uncond_ids = tokenizer([None] * len(rows))
        return self.generate_images(
            class_ids,
            uncond_ids,
            sampling,
            generator=generator,
            use_cache=use_cache,
            show_progress=show_progress,
            output_type=output_type,
            return_dict=return_dict,
            callback_on_step_end=callback_on_step_end,
        )
