"""Text-to-audio pipeline (CLEAR): prompt -> next-latent group loop with a per-token flow head ->
causal waveform decoder; :meth:`TextToAudioPipeline.stream` yields audio as it is generated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mmgen.pipelines.ar_image import ARImagePipeline
from mmgen.pipelines.outputs import AudioPipelineOutput
from mmgen.pipelines.text_to_image import prompt_ids


class TextToAudioPipeline(ARImagePipeline):
    """Generate audio clips from text prompts, one chunk of latents per backbone call.

    Args:
        transformer: the :class:`ARTransformer` (latent input, flow MLP head).
        vq: the :class:`~mmgen.tokenizers.waveform.WaveformAutoencoder`.
        text_tokenizer: ``ByteTokenizer`` or ``TrainedTextTokenizer``.
        image_size: the clip's length in samples (saved as ``num_samples``).
        sampling: default sampling knobs.
        training_config: the recipe that trained the model, saved alongside.
        order: the ``next_latent`` order's config (``chunk``).
    """

    condition_key = "text_tokenizer"
    default_condition_tokenizer = "ByteTokenizer"
    size_key = "num_samples"

    @property
    def text_tokenizer(self):
        return self.condition_tokenizer

    @property
    def sample_rate(self) -> int:
        return self.vq.config.sample_rate

    @property
    def num_samples(self) -> int:
        """Samples of one clip."""
        return self.image_size

    def _prepare(self, prompt, negative_prompt, per_prompt, generator, sampling_knobs):
        self.check_common_args(per_prompt, "np", generator, "num_audios_per_prompt")
        sampling = self.resolve_sampling(**sampling_knobs)
        text_ids, uncond_ids = prompt_ids(self.text_tokenizer, prompt, negative_prompt, per_prompt)
        return text_ids, uncond_ids, sampling

    def decode_latents(self, latents_BNC: torch.Tensor) -> torch.Tensor:
        """(B, N, C) latents -> (B, N * hop) waveforms in [-1, 1]."""
        return self.vq.decode(latents_BNC.transpose(1, 2).to(self.vq_device))

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_audios_per_prompt: int = 1,
        guidance_scale: float | None = None,
        guidance_schedule: str | None = None,
        guidance_cutoff: int | None = None,
        temperature: float | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        use_cache: bool = True,
        show_progress: bool | None = None,
        callback_on_step_end=None,
    ) -> AudioPipelineOutput | tuple[Any]:
        """Generate one clip per prompt (times ``num_audios_per_prompt``).

        Args:
            prompt (`str` or `list[str]`): what to play, e.g. ``"play C4 E4 G4"``.
            negative_prompt (`str` or `list[str]`, *optional*): the guidance's other half.
            num_audios_per_prompt (`int`, defaults to 1): clips per prompt.
            guidance_scale, guidance_schedule, guidance_cutoff (*optional*): classifier-free
                guidance on the flow head's velocity.
            temperature (`float`, *optional*): scale of the flow head's starting noise.
            num_inference_steps (`int`, *optional*): Euler steps per latent.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): source of
                every random draw; a list gives one generator per clip (clip i then depends
                on ``generator[i]`` only).
            output_type (`str`, defaults to ``"np"``): ``"np"`` (a list of 1-D float32 arrays in
                [-1, 1]), ``"pt"`` ((B, S) tensor) or ``"latent"`` ((B, N, C) latents).
            return_dict, use_cache, show_progress, callback_on_step_end: as for images.

        Examples:
            >>> import torch
            >>> from mmgen import TextToAudioPipeline
            >>> pipe = TextToAudioPipeline.from_pretrained("tones-t2a")
            >>> out = pipe("play C4 E4 G4", generator=torch.Generator().manual_seed(0))
            >>> out.audios[0].shape, out.sample_rate
            ((16000,), 16000)
        """
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        text_ids, uncond_ids, sampling = self._prepare(
            prompt, negative_prompt, num_audios_per_prompt, generator,
            dict(guidance_scale=guidance_scale, guidance_schedule=guidance_schedule,
                 guidance_cutoff=guidance_cutoff, temperature=temperature,
                 num_inference_steps=num_inference_steps),
        )  # fmt: skip
        latents = self.generate_tokens(
            text_ids, uncond_ids, sampling, generator=generator, use_cache=use_cache,
            show_progress=show_progress, callback_on_step_end=callback_on_step_end,
            progress_label="latents",
        )  # fmt: skip
        if output_type == "latent":
            audios = latents
        else:
            waves = self.decode_latents(latents)[:, : self.num_samples].float().cpu()
            audios = waves if output_type == "pt" else [w.numpy() for w in waves]
        out = AudioPipelineOutput(audios=audios, sample_rate=self.sample_rate)
        return out if return_dict else (audios, self.sample_rate)

    @torch.no_grad()
    def stream(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield the clip of one prompt as float32 chunks, each as soon as its latents exist:
        the decoder is causal, so the samples of every new chunk of latents are final when it
        is generated. The chunks concatenated equal ``pipe(prompt, ...)`` for the same
        generator. Each step decodes only the new latents and the decoder's context before them
        (``vq.decoder_context``), so streaming costs about what one decode does. Stop iterating
        (or ``close()``) at any point: generation stops with it, nothing runs on."""
        from mmgen.generation.loop import generate_groups

        if not isinstance(prompt, str):
            raise TypeError(f"stream takes one prompt (a str), got {type(prompt).__name__}")
        text_ids, uncond_ids, sampling = self._prepare(
            prompt, negative_prompt, 1, generator,
            dict(guidance_scale=guidance_scale, temperature=temperature,
                 num_inference_steps=num_inference_steps),
        )  # fmt: skip
        emitted = 0  # latents whose samples are out
        context, hop = self.vq.decoder_context, self.vq.hop
        steps = generate_groups(self.transformer, self.order, text_ids, uncond_ids, sampling,
                                generator=generator, decoder=self.decoder)  # fmt: skip
        for _, _, state in steps:
            done = state.done * self.order.chunk  # latents generated so far
            # the causal decoder on the new latents and the context before them: their
            # samples are final and equal the one-shot decode's
            first = max(0, emitted - context)
            wave = self.decode_latents(state.codes[:, first:done])[0]  # ((done - first) * hop,)
            end = min(done * hop, self.num_samples) - first * hop
            chunk = wave[(emitted - first) * hop : end].float().cpu().numpy()
            emitted = done
            if chunk.size:
                yield chunk
