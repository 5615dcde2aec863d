"""Text-to-video pipeline: prompt -> next-frame group loop (one backbone call per frame) ->
per-frame decoder. Continues given frames (video prediction) with the same model."""

from __future__ import annotations

from typing import Any

import torch

from mmgen.pipelines.ar_image import ARImagePipeline
from mmgen.pipelines.outputs import (
    VideoPipelineOutput,
    image_to_tensor,
    to_video_output_type,
)
from mmgen.pipelines.text_to_image import prompt_ids
from mmgen.utils.checks import check_int


class TextToVideoPipeline(ARImagePipeline):
    """Generate short videos from text prompts, frame by frame (FAR's next-frame order).

    Args:
        transformer: the :class:`ARTransformer` (latent input, group flow head).
        vq: the per-frame autoencoder (``KLModel``): every frame is encoded and decoded alone.
        text_tokenizer: ``ByteTokenizer`` or ``TrainedTextTokenizer``.
        image_size: frame height and width in pixels.
        sampling: default sampling knobs (``flexrope_slope`` among them).
        training_config: the recipe that trained the model, saved alongside.
        order: the ``next_frame`` order's config (its ``num_frames`` is the default clip
            length).
    """

    condition_key = "text_tokenizer"
    default_condition_tokenizer = "ByteTokenizer"

    @property
    def text_tokenizer(self):
        return self.condition_tokenizer

    @property
    def num_frames(self) -> int:
        """The default clip length (the training length)."""
        return self.order.num_frames

    def encode_frames(self, frames, batch_size: int) -> torch.Tensor:
        """Given frames -> their latents (B, k * h * w, C): one clip (a list of PIL images or
        (3, H, W) uint8 tensors) for every video, or one clip per video (a list of such
        lists)."""
        clips = frames if frames and isinstance(frames[0], (list, tuple)) else [frames]
        if len(clips) not in (1, batch_size):
            raise ValueError(f"frames holds {len(clips)} clips for {batch_size} videos: give one "
                             "clip for all or one per video")  # fmt: skip
        lengths = {len(c) for c in clips}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"every clip in frames needs the same number (>= 1) of frames, "
                             f"got {sorted(lengths)}")  # fmt: skip
        pixels = torch.stack([torch.stack([image_to_tensor(f) for f in c]) for c in clips])
        if tuple(pixels.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"frames must be {self.image_size}x{self.image_size}, got "
                             f"{tuple(pixels.shape[-2:])}")  # fmt: skip
        with torch.no_grad():
            latents = self.vq.encode(pixels.flatten(0, 1).to(self.vq_device))  # (n*k, C, h, w)
        latents = latents.unflatten(0, pixels.shape[:2])  # (n, k, C, h, w)
        tokens = latents.flatten(3).transpose(2, 3).flatten(1, 2).float()  # (n, k*h*w, C)
        return tokens.expand(batch_size, -1, -1) if len(clips) == 1 else tokens

    def decode_videos(self, tokens_BNC: torch.Tensor, order) -> torch.Tensor:
        """(B, F * h * w, C) frame latents -> (B, F, 3, H, W) videos in [-1, 1]."""
        latents = order.token_layout.unflatten(tokens_BNC.to(self.vq_device))  # (B, F, C, h, w)
        B, F = latents.shape[:2]
        return self.vq.decode(latents.flatten(0, 1)).unflatten(0, (B, F))

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_videos_per_prompt: int = 1,
        num_frames: int | None = None,
        frames: list | None = None,
        guidance_scale: float | None = None,
        guidance_schedule: str | None = None,
        guidance_cutoff: int | None = None,
        temperature: float | None = None,
        num_inference_steps: int | None = None,
        flexrope_slope: float | None = None,
        long_window: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        use_cache: bool = True,
        show_progress: bool | None = None,
        callback_on_step_end=None,
    ) -> VideoPipelineOutput | tuple[Any]:
        """Generate videos for one prompt or a list of prompts.

        Args:
            prompt (`str` or `list[str]`): what should move; ``""`` is unconditional.
            negative_prompt (`str` or `list[str]`, *optional*): the guidance's other half.
            num_videos_per_prompt (`int`, defaults to 1): videos per prompt.
            num_frames (`int`, *optional*): frames per video (default: the training length;
                longer clips extrapolate).
            frames (`list`, *optional*): frames to continue (video prediction): a list of PIL
                images (the same start for every video) or one such list per video. They
                are the first frames of the output (decoded from their latents).
            guidance_scale, guidance_schedule, guidance_cutoff (*optional*): classifier-free
                guidance on the flow head's velocity, per frame (see the image pipeline; a
                schedule or cutoff counts generation groups, first-frame scales included).
            temperature (`float`, *optional*): scale of the flow head's starting noise.
            num_inference_steps (`int`, *optional*): Euler steps per frame.
            flexrope_slope (`float`, *optional*): FlexRoPE's attention decay per frame of
                distance (0 is exactly RoPE).
            long_window (`int`, *optional*): FAR-Long's window W for this call: frames older
                than W enter as long-term rows (``long_patch`` blocks; see
                :mod:`mmgen.orders.next_frame`). Default the model's order; a model trained
                without long context meets such rows first here (an extrapolation study).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): source of
                every random draw; a list gives one generator per video (video i then depends
                on ``generator[i]`` only).
            output_type (`str`, defaults to ``"pil"``): ``"pil"`` (a list of frame lists),
                ``"np"``, ``"pt"`` or ``"latent"`` (see :class:`VideoPipelineOutput`).
            return_dict (`bool`, defaults to True): a :class:`VideoPipelineOutput`, not a tuple.
            use_cache (`bool`, defaults to True): False recomputes every frame (reference path).
            show_progress (`bool`, *optional*): a progress bar over the frames (over the
                generation groups for a model with first-frame scales).
            callback_on_step_end (`Callable`, *optional*): ``callback(step, num_groups, state)``
                after every generation group: one per frame, after the first-frame scales' S
                groups when the model has them (``state.codes`` holds the latents of the
                frames so far; a scale step leaves them unchanged).

        Examples:
            >>> import torch
            >>> from diffusers.utils import export_to_video
            >>> from mmgen import TextToVideoPipeline
            >>> pipe = TextToVideoPipeline.from_pretrained("moving-shapes-t2v")
            >>> out = pipe("a red circle moving right", generator=torch.Generator().manual_seed(0))
            >>> export_to_video(out.frames[0], "clip.mp4", fps=8)
        """
        self.check_common_args(num_videos_per_prompt, output_type, generator,
                               "num_videos_per_prompt")  # fmt: skip
        num_frames = self.num_frames if num_frames is None else num_frames
        check_int("num_frames", num_frames)
        sampling = self.resolve_sampling(
            guidance_scale=guidance_scale,
            guidance_schedule=guidance_schedule,
            guidance_cutoff=guidance_cutoff,
            temperature=temperature,
            num_inference_steps=num_inference_steps,
            flexrope_slope=flexrope_slope,
        )
        text_ids, uncond_ids = prompt_ids(
            self.text_tokenizer, prompt, negative_prompt, num_videos_per_prompt
        )
        changes = {} if long_window is None else {"long_window": long_window}
        order = self.order.with_frames(num_frames, **changes)
        given = None
        if frames is not None:
            tokens = self.encode_frames(list(frames), text_ids.shape[0])
            if tokens.shape[1] >= order.token_layout.num_tokens:
                count = tokens.shape[1] // order.frame_layout.tokens_per_frame
                raise ValueError(f"frames gives {count} frames; num_frames={num_frames} leaves "
                                 "none to generate")  # fmt: skip
            given = order.given_samples(tokens)
        tokens = self.generate_tokens(
            text_ids,
            uncond_ids,
            sampling,
            generator=generator,
            use_cache=use_cache,
            show_progress=show_progress,
            callback_on_step_end=callback_on_step_end,
            order=order,
            given=given,
            progress_label="groups" if order.first_frame_scales else "frames",
        )  # (B, F*h*w, C)
        if output_type == "latent":
            videos = tokens
        else:
            videos = to_video_output_type(self.decode_videos(tokens, order), output_type)
        return VideoPipelineOutput(frames=videos) if return_dict else (videos,)
