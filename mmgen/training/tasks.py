"""Training tasks: what to build, what data to feed, which loss, how to validate and export."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.training.config import MEDIA_FOLDERS, RunConfig
from mmgen.utils.config import ConfigError, from_dict, to_dict
from mmgen.utils.images import image_grid


def render_procedural(data, key: str, *, show_progress: bool) -> tuple[torch.Tensor, list]:
    """Render a procedural data set (``ShapesDataset``, ``MovingShapesDataset``): every item's
    uint8 ``key`` tensor stacked (N, ...) and the prompts."""
    from tqdm.auto import tqdm

    first = data[0][key]
    pixels = torch.empty(len(data), *first.shape, dtype=first.dtype)
    prompts = []
    name = type(data).__name__.removesuffix("Dataset")
    for i in tqdm(range(len(data)), desc=f"rendering {name}", disable=not show_progress):
        item = data[i]
        pixels[i] = item[key]
        prompts.append(item["prompt"])
    return pixels, prompts


def context_noise_orders() -> str:
    """The registered orders that take ``training.context_noise``, named for an error."""
    from mmgen.orders import ORDERS
    from mmgen.registry import resolve_class

    return ", ".join(
        sorted(n for n, spec in ORDERS.items() if resolve_class(spec).takes_context_noise)
    )


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [-1, 1]; float data (waveforms, already in [-1, 1]) as is."""
    if images_uint8.dtype != torch.uint8:
        return images_uint8.float()
    return images_uint8.float().div(127.5).sub(1.0)


def load_training_images(
    data, *, show_progress: bool, sample_rate: int = 16_000
) -> tuple[torch.Tensor, list]:
    """(N, C, H, W) uint8 images, (N, F, C, H, W) clips for video data or (N, T) float32
    waveforms for audio data (an audio folder's resampled to ``sample_rate``), and their
    conditions (prompts or class labels)."""
    if data.name == "tones":
        from mmgen.data.tones import TonesDataset

        return render_procedural(TonesDataset(data.num_samples, seed=data.seed), "audio",
                                 show_progress=show_progress)  # fmt: skip
    if data.name == "audiofolder":
        from mmgen.data.folders import read_audio_folder

        return read_audio_folder(data.path, sample_rate, data.seconds, strict=data.strict,
                                 show_progress=show_progress)  # fmt: skip
    if data.name == "moving_shapes":
        from mmgen.data.moving_shapes import MovingShapesDataset

        clips = MovingShapesDataset(data.num_samples, seed=data.seed, num_frames=data.num_frames,
                                    two_object_weight=data.two_object_weight)  # fmt: skip
        return render_procedural(clips, "frames", show_progress=show_progress)
    if data.name == "videofolder":
        from mmgen.data.folders import read_video_folder

        return read_video_folder(data.path, data.resolution, data.num_frames,
                                 strict=data.strict, show_progress=show_progress)  # fmt: skip
    if data.name == "digits":
        from mmgen.data.digits import load_digits_split

        images, labels = load_digits_split("train")
        return images, labels.tolist()
    if data.name == "imagefolder":
        from mmgen.data.folders import read_image_folder

        return read_image_folder(
            data.path, data.resolution, strict=data.strict, show_progress=show_progress
        )
    from mmgen.data.shapes import ShapesDataset

    shapes = ShapesDataset(data.num_samples, seed=data.seed, family_weights=data.family_weights,
                           near_miss=data.near_miss)  # fmt: skip
    return render_procedural(shapes, "image", show_progress=show_progress)


def encode_images(
    vq, token_layout, images: torch.Tensor, accelerator, batch_size: int = 256,
    compile: bool = False,
) -> torch.Tensor:  # fmt: skip
    """(N, C, H, W) uint8 images -> flat tokens (``TokenLayout.flatten``): codes (N, tokens)
    or latents (N, tokens, C), encoded on the accelerator's device and stored compactly on
    the CPU (int16 codes where the codebook allows, float16 latents). (N, F, C, H, W) clips
    are encoded frame by frame into (N, F * tokens, C), (N, S) waveforms into (N, N', C).

    ``compile``: run ``vq.encode`` through ``torch.compile`` (one shape: the last chunk is
    padded to ``batch_size`` and its padding dropped): 1.6x faster over 10,000 shapes images
    through the shipped VQ on 2 CPU threads, compilation included; about one code in 10^4
    differs from the eager one, where two codebook entries are about equally near."""
    from tqdm.auto import tqdm

    vq.to(accelerator.device)
    if token_layout.is_continuous:
        dtype = torch.float16
    elif token_layout.codebook_size <= torch.iinfo(torch.int16).max:
        dtype = torch.int16
    else:
        dtype = torch.int32
    codes = []
    clips = images.ndim == 5
    if clips:  # about batch_size frames per encoder call
        batch_size = max(1, batch_size // images.shape[1])
    encode = torch.compile(vq.encode, dynamic=False) if compile else vq.encode
    with torch.no_grad():
        for start in tqdm(
            range(0, len(images), batch_size),
            desc=f"encoding {'clips' if clips else 'images' if images.ndim == 4 else 'audio'}",
            disable=not accelerator.is_local_main_process,
        ):
            chunk = to_unit_range(images[start : start + batch_size].to(accelerator.device))
            n = len(chunk)
            if compile and n < batch_size:  # the compiled encoder's one shape: pad, then drop
                chunk = torch.cat([chunk, chunk[-1:].expand(batch_size - n, *chunk.shape[1:])])
            if clips:  # (b, F, C, H, W) -> per-frame latents (b, F, C', h, w)
                encoded = encode(chunk.flatten(0, 1)).unflatten(0, chunk.shape[:2])[:n]
            else:
                encoded = encode(chunk)[:n]
            codes.append(token_layout.flatten(encoded).to("cpu", dtype))
    vq.to("cpu")
    return torch.cat(codes)


def load_encoded_data(
    cache_dir, vq, token_layout, data, accelerator, compile: bool = False
) -> tuple[torch.Tensor, list]:
    """The codes (or latents) and conditions of ``data`` (a ``DataConfig``) under ``vq``, from
    the shared cache (``mmgen.training.encoded_data``), or rendered/read and encoded once
    (:func:`encode_images`, its encoder compiled with ``compile``) and stored there."""
    from mmgen.training.encoded_data import EncodedDataCache

    cache = EncodedDataCache(cache_dir, vq, data)
    entry = cache.load()
    if entry is not None:
        accelerator.print(f"encoded data: {len(entry[1])} examples from {cache.folder}")
        return entry
    sample_rate = getattr(getattr(vq, "config", None), "sample_rate", 16_000)
    images, conditions = load_training_images(
        data, show_progress=accelerator.is_local_main_process, sample_rate=sample_rate
    )
    codes = encode_images(vq, token_layout, images, accelerator, compile=compile)
    if accelerator.is_main_process:
        cache.save(codes, conditions)
    return codes, conditions


class TokenizerTask:
    """Train an image tokenizer (``model_class``: VQ, multi-scale VQ or KL) on ``shapes``,
    ``digits``, an image folder, or the frames of video data (reconstruction + VQ losses)."""

    def __init__(self, config: RunConfig):
        from mmgen.registry import resolve_class

        self.config = config
        try:
            self.model_class = resolve_class(config.model_class, what="model_class")
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.vq_config = from_dict(self.model_class.config_class, config.model, where="model")
        self.images = None

    def build_model(self) -> nn.Module:
        return self.model_class(self.vq_config)

    def prepare_data(self, accelerator) -> int:
        self.images, _ = load_training_images(
            self.config.data,
            show_progress=accelerator.is_local_main_process,
            sample_rate=getattr(self.vq_config, "sample_rate", 16_000),
        )
        if self.images.ndim == 5:  # clips: a per-frame tokenizer trains on their frames
            self.images = self.images.flatten(0, 1)
        return len(self.images)

    def get_batch(self, indices, device) -> dict:
        return {"images": to_unit_range(self.images[indices]).to(device)}

    def evaluate(self, model, num_images: int) -> dict:
        if self.config.data.name == "tones":  # held-out clips through the tones verifier
            from mmgen.eval.tokenizer_eval import evaluate_audio_reconstruction

            return evaluate_audio_reconstruction(model, num_clips=num_images)
        if self.config.data.name == "moving_shapes":  # held-out clips through the clip verifier
            from mmgen.eval.tokenizer_eval import evaluate_clip_reconstruction

            return evaluate_clip_reconstruction(model, num_clips=max(1, num_images // 4))
        if self.config.data.name in MEDIA_FOLDERS:  # user data: pixel (or sample) error
            with torch.no_grad():
                originals = to_unit_range(self.images[:num_images]).to(
                    next(model.parameters()).device
                )
                recon = model.decode(model.encode(originals))[..., : originals.shape[-1]]
                mse = F.mse_loss(recon, originals).item()
            return {"mse": mse, "num_images": len(originals)}
        if self.config.data.name == "digits":
            from mmgen.eval.tokenizer_eval import evaluate_digits_reconstruction

            return evaluate_digits_reconstruction(model)
        from mmgen.eval.tokenizer_eval import evaluate_reconstruction

        return evaluate_reconstruction(model, num_images=num_images)

    def loss(self, model, batch, generator):
        out = model(batch["images"], generator=generator)
        stats = {"reconstruction_loss": out.reconstruction_loss.item()}
        for name in ("perplexity", "kl_loss"):  # VQ / KL tokenizers
            if hasattr(out, name):
                stats[name] = getattr(out, name).item()
        return out.loss, stats

    def validate(self, model, step: int, output_dir: Path) -> dict:
        from mmgen.pipelines.outputs import to_output_type

        metrics = self.evaluate(model, num_images=100)
        metrics = {k: round(v, 4) for k, v in metrics.items()
                   if k != "num_images" and isinstance(v, float)}  # fmt: skip
        if self.images.ndim == 2:  # waveforms: spectrograms, originals above reconstructions
            from mmgen.eval.tones_eval import spectrogram_sheet

            with torch.no_grad():
                originals = to_unit_range(self.images[:8]).to(next(model.parameters()).device)
                recon = model.decode(model.encode(originals))[:, : originals.shape[1]]
            clips = [c.float().cpu().numpy() for c in torch.cat([originals, recon])]
            captions = ["original"] * len(originals) + ["reconstruction"] * len(recon)
            folder = output_dir / "samples"
            folder.mkdir(parents=True, exist_ok=True)
            sheet = spectrogram_sheet(clips, captions, sample_rate=self.vq_config.sample_rate,
                                      cols=len(originals))  # fmt: skip
            sheet.save(folder / f"step_{step:07d}.png")
            return metrics
        with torch.no_grad():
            originals = to_unit_range(self.images[:16]).to(next(model.parameters()).device)
            recon = model.decode(model.encode(originals))
        tiles = to_output_type(torch.cat([originals, recon]), "pil")
        folder = output_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        image_grid(tiles, cols=16, scale=2).save(folder / f"step_{step:07d}.png")
        return metrics

    def export(self, model, folder: Path) -> dict:
        from mmgen.utils.serialization import save_module, write_json

        if hasattr(model, "calibrate"):  # continuous latents: fit their normalisation first
            model.calibrate(to_unit_range(self.images[:2048]).to(next(model.parameters()).device))
        save_module(model, folder)
        metrics = self.evaluate(model, num_images=400)
        write_json(folder / "eval.json", metrics)
        print(
            "tokenizer: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if v is not None)
        )
        return metrics


def merged_head_config(order_head: dict, recipe_head: dict | None) -> dict:
    """The order's head with the recipe's ``model.head`` over it: options without a ``kind``
    (or with the order's kind) tune the order's head (``{width: 256}`` for a flow head); another
    kind replaces it."""
    if not recipe_head:
        return order_head
    if recipe_head.get("kind", order_head["kind"]) != order_head["kind"]:
        return dict(recipe_head)
    return {**order_head, **recipe_head}


class GenerationTask:
    """Train the transformer on a tokenizer's codes in any order (``config.order``) with a
    condition prefix: prompts for ``text_to_image`` (shapes), ``text_to_video`` (moving-shapes)
    and ``text_to_audio`` (tones), class labels for ``class_to_image`` (digits). The order gives
    the teacher-forcing inputs and targets, the model's head the loss."""

    def __init__(self, config: RunConfig):
        from mmgen.builtin import resolve_component_path
        from mmgen.generation.loop import SamplingConfig
        from mmgen.utils.serialization import load_component

        self.config = config
        self.vq = load_component(resolve_component_path(config.tokenizer))
        self.sampling = from_dict(SamplingConfig, config.sampling, where="sampling")
        self.device_layout = {}
        self.condition_tokenizer = self.order = self.layout = self.model_config = None
        if config.task == "class_to_image":
            from mmgen.data.digits import NUM_CLASSES
            from mmgen.pipelines.class_to_image import ClassToImagePipeline
            from mmgen.tokenizers.label import ClassLabelTokenizer

            self.pipeline_class = ClassToImagePipeline
            self.configure(ClassLabelTokenizer(NUM_CLASSES))
        else:
            if config.task == "text_to_video":
                from mmgen.pipelines.text_to_video import TextToVideoPipeline

                self.pipeline_class = TextToVideoPipeline
            elif config.task == "text_to_audio":
                from mmgen.pipelines.text_to_audio import TextToAudioPipeline

                self.pipeline_class = TextToAudioPipeline
            else:
                from mmgen.pipelines.text_to_image import TextToImagePipeline

                self.pipeline_class = TextToImagePipeline
            if config.text_tokenizer["kind"] == "bytes":
                from mmgen.tokenizers.text import ByteTokenizer

                self.configure(ByteTokenizer(config.text_max_length))
            # a learned vocabulary is trained on the captions in prepare_data

    def configure(self, condition_tokenizer) -> None:
        """Fix the condition tokenizer, and with it the order's layout and the model config."""
        from mmgen.models.transformer import TransformerConfig, transformer_config_from_preset

        self.condition_tokenizer = condition_tokenizer
        null_condition = None if self.config.task == "class_to_image" else ""
        self.null_ids = condition_tokenizer([null_condition])[0]  # (T,): the guidance's other half
        model_fields = dict(self.config.model)
        preset = model_fields.pop("preset", None)
        self.order = self.build_order(condition_tokenizer.max_length)
        if self.config.training.context_noise and not self.order.takes_context_noise:
            raise ConfigError(
                f"training.context_noise: the {self.order.name} order has no context noise "
                f"(orders that take it: {context_noise_orders()})"
            )
        model_fields.setdefault("input", self.order.input_config())
        recipe_head = model_fields.get("head")
        model_fields["head"] = merged_head_config(self.order.head_config(), recipe_head)
        model_fields.update(condition_vocab_size=condition_tokenizer.vocab_size)
        if preset is not None:
            self.model_config = transformer_config_from_preset(preset, **model_fields)
        else:
            self.model_config = from_dict(TransformerConfig, model_fields, where="model")
        self.layout = self.order.layout
        self.first_frame_order = None
        if self.config.training.first_frame_batch:  # a clip's prefix: prompt, frame 0's groups
            if not hasattr(self.order, "with_frames"):
                raise ConfigError(f"training.first_frame_batch: the {self.order.name} order "
                                  "has no frames")  # fmt: skip
            self.first_frame_order = self.order.with_frames(1)

    @property
    def sample_size(self) -> int:
        """The size the order lays out: an image's (or frame's) side in pixels, or an audio
        clip's length in samples (``data.seconds`` at the tokenizer's sample rate)."""
        if self.config.task == "text_to_audio":
            return round(self.config.data.seconds * self.vq.config.sample_rate)
        return self.config.data.resolution

    def token_layout(self):
        """The order's :class:`TokenLayout` (what the data is encoded to); known before a
        learned text tokenizer fixes the prompt length, which it does not depend on."""
        order = self.order or self.build_order(self.config.text_max_length)
        return order.token_layout

    def build_order(self, condition_length: int):
        """The recipe's order over this task's tokenizer and sample size, after a condition of
        ``condition_length`` rows (1-D positions under ``model.rope: 1d``)."""
        from mmgen.orders import build_order

        flat = self.config.model.get("rope", "2d") == "1d"
        return build_order(self.order_spec(), self.vq, self.sample_size, condition_length,
                           flat_positions=flat)  # fmt: skip

    def order_spec(self) -> dict:
        """The recipe's order; a video task's clips fix its ``num_frames``.

        Raises:
            ConfigError: when a video order's ``num_frames`` differs from ``data.num_frames``.
        """
        spec = dict(self.config.order)
        if self.config.task != "text_to_video":
            return spec
        frames = self.config.data.num_frames
        if spec.setdefault("num_frames", frames) != frames:
            raise ConfigError(f"order.num_frames {spec['num_frames']} differs from "
                              f"data.num_frames {frames}")  # fmt: skip
        return spec

    def build_model(self) -> nn.Module:
        from mmgen.models.transformer import ARTransformer

        if self.model_config is None:
            raise RuntimeError(
                "call prepare_data first: the text tokenizer learns from the captions"
            )
        model = ARTransformer(self.model_config)
        self.head = model.head  # draws its training noise outside the wrapped, compiled model
        return model

    def prepare_data(self, accelerator) -> int:
        """Codes and conditions of the training set, from the shared cache
        (``mmgen.training.encoded_data``) or rendered/read and encoded once and stored there;
        a learned text tokenizer is trained on the captions here."""
        self.codes, conditions = self.encoded_data(self.config.data, accelerator)
        first_frame_conditions = None
        if self.config.training.first_frame_batch:
            self.first_frames, first_frame_conditions = self.first_frame_data(accelerator)
        if self.condition_tokenizer is None:
            inherited = self.init_from_text_tokenizer(conditions)
            if inherited is not None:
                self.configure(inherited)
                accelerator.print(
                    f"text tokenizer: {inherited.vocab_size} ids from init_from's pipeline "
                    f"(every one of the {len(conditions)} captions in its vocabulary)"
                )
            else:
                self.learn_text_tokenizer(conditions)
                accelerator.print(
                    f"text tokenizer: {self.condition_tokenizer.vocab_size} ids learned from "
                    f"{len(conditions)} captions"
                )
        self.condition_ids = self.condition_tokenizer(conditions)  # (N, T)
        if first_frame_conditions is not None:  # (M, T)
            self.first_frame_ids = self.condition_tokenizer(first_frame_conditions)
        elif self.config.training.first_frame_batch:  # the clips' own
            self.first_frame_ids = self.condition_ids
        return len(conditions)

    def encoded_data(self, data, accelerator) -> tuple[torch.Tensor, list]:
        """The codes (or latents) and conditions of ``data`` (:func:`load_encoded_data`)."""
        return load_encoded_data(self.config.cache_dir, self.vq, self.token_layout(), data,
                                 accelerator, compile=self.config.training.compile)  # fmt: skip

    def first_frame_data(self, accelerator) -> tuple[torch.Tensor, list]:
        """``training.first_frame_batch``'s pool: the first frames' latents (M, tokens, C) and
        their prompts; the training clips' own, or ``first_frame_samples`` one-frame clips of
        the same data (the same cache as a ``data.num_frames: 1`` recipe's)."""
        import dataclasses

        count = self.config.training.first_frame_samples
        if count is None:
            tokens = self.order.frame_layout.tokens_per_frame
            return self.codes[:, :tokens], None  # the clips' prompts: condition_ids
        data = dataclasses.replace(self.config.data, num_frames=1, num_samples=count)
        return self.encoded_data(data, accelerator)

    def init_from_text_tokenizer(self, captions: list[str]):
        """The learned text tokenizer of the pipeline that ``init_from`` points into, when the
        recipe learns one of the same kind and row length and it knows every caption word;
        else None. Reusing it keeps the copied condition embeddings on the ids they were
        trained for: a vocabulary learned afresh orders its words by their counts in these
        captions, so the same words can get other ids."""
        import warnings

        from mmgen.builtin import resolve_component_path
        from mmgen.tokenizers.trained_text import FILE_NAME, TrainedTextTokenizer

        if not self.config.init_from:
            return None
        path = resolve_component_path(self.config.init_from).parent / FILE_NAME
        if not path.is_file():
            return None
        tokenizer = TrainedTextTokenizer.from_file(path)
        if (tokenizer.kind, tokenizer.max_length) != (
            self.config.text_tokenizer["kind"],
            self.config.text_max_length,
        ):
            return None
        encodings = tokenizer.tokenizer.encode_batch(list(captions))
        if any(tokenizer.unk_id in enc.ids for enc in encodings):
            warnings.warn(
                f"init_from: {path} does not know every caption word; a new vocabulary is "
                "learned, so the copied condition embeddings start on other words' ids",
                stacklevel=2,
            )
            return None
        return tokenizer

    def learn_text_tokenizer(self, captions: list[str]) -> None:
        """Train the recipe's ``text_tokenizer`` (word or BPE) on ``captions`` and configure
        the task with it."""
        from mmgen.tokenizers.trained_text import TrainedTextTokenizer

        options = {k: v for k, v in self.config.text_tokenizer.items() if k != "kind"}
        kind = self.config.text_tokenizer["kind"]
        max_length = self.config.text_max_length
        self.configure(
            TrainedTextTokenizer.train(captions, kind=kind, max_length=max_length, **options)
        )

    def get_batch(self, indices, device) -> dict:
        condition_ids = self.condition_ids[indices].to(device)
        device = condition_ids.device  # "cuda" -> "cuda:0", the key loss() looks up
        if device not in self.device_layout:  # the layouts' tensors copied once per device
            self.device_layout[device] = self.layout_tensors(self.layout, device)
            if self.first_frame_order is not None:
                self.device_layout[device]["first_frame"] = self.layout_tensors(
                    self.first_frame_order.layout, device
                )
        return {
            "condition_ids": condition_ids,
            "codes": self.codes[indices].to(device, self.order.token_layout.token_dtype),
        }

    @staticmethod
    def layout_tensors(layout, device) -> dict:
        """A layout's tensors that every training step passes the model, on ``device``."""
        layout = layout.to(device)
        # plain causal layouts pass kv_end=None: SDPA's flash path, also when compiled
        return dict(
            positions=layout.positions,
            kv_end=None if layout.is_causal else layout.kv_end,
            attention_bias=layout.attention_bias(0, layout.length),  # a non-prefix mask
            target_rows=layout.target_index(),  # rows with targets (None: all)
        )

    def loss(self, model, batch, generator):
        layout = self.device_layout[batch["condition_ids"].device]
        sequences = self.training_sequences(self.order, layout, batch["condition_ids"],
                                            batch["codes"], generator)  # fmt: skip
        tokens = batch["codes"].shape[0] * self.layout.length
        n = self.config.training.first_frame_batch
        if n:  # after every draw of the clips, so those stay the same with or without
            picked = torch.randint(len(self.first_frames), (n,), generator=generator)
            device = batch["codes"].device
            sequences["extra_sequences"] = self.training_sequences(
                self.first_frame_order, layout["first_frame"],
                self.first_frame_ids[picked].to(device),
                self.first_frames[picked].to(device, self.order.token_layout.token_dtype),
                generator,
            )  # fmt: skip
            tokens += n * self.first_frame_order.layout.length
        return model(**sequences), {"tokens": tokens}

    def training_sequences(self, order, layout: dict, condition_ids, codes, generator) -> dict:
        """The model's training-call arguments for a batch of ``order``'s sequences (its
        ``layout_tensors`` in ``layout``): conditions dropped for guidance, teacher-forcing
        inputs (noised by ``training.context_noise``), targets and the head's draws."""
        from mmgen.sequence import drop_condition

        training = self.config.training
        condition_ids = drop_condition(condition_ids, self.null_ids, training.condition_dropout,
                                       generator)  # fmt: skip
        inputs, targets = order.training_inputs(codes)  # the generated rows
        if training.context_noise:
            from mmgen.generation.flow import draw_times  # uniform in [0, 1), per sample

            sigma = draw_times(inputs.shape[0], generator, inputs.device)
            sigma = sigma * training.context_noise  # (B,)
            inputs = order.noised_inputs(inputs, sigma, generator)
        draws = self.head.training_draws(targets, generator)  # a flow head's noise and times
        if "row_weights" not in layout:  # training.group_loss_power's, once per device
            layout["row_weights"] = self.row_weights(targets, order)
        return dict(positions=layout["positions"], kv_end=layout["kv_end"],
                    condition_ids=condition_ids, inputs=inputs, targets=targets, draws=draws,
                    attention_bias=layout["attention_bias"], target_rows=layout["target_rows"],
                    row_weights=layout["row_weights"])  # fmt: skip

    def row_weights(self, targets: torch.Tensor, order=None) -> torch.Tensor | None:
        """(n_targets,) loss weights of the target rows of ``order``'s sequences (default the
        task's) under ``training.group_loss_power`` and ``training.first_group_weight`` (None
        when both leave every code alike)."""
        from mmgen.models.heads import group_loss_weights

        order = order or self.order
        training = self.config.training
        power, first = training.group_loss_power, training.first_group_weight
        if not power and first == 1:
            return None
        layout = order.layout
        groups = range(len(layout.image_groups))
        rows = [end - start for start, end in map(layout.sampled_rows, groups)]
        return group_loss_weights(targets, rows, power, first_group_weight=first,
                                  first_groups=order.first_output_groups)  # fmt: skip

    def pipeline(self, model):
        return self.pipeline_class(
            model,
            self.vq.to(model.device),
            self.condition_tokenizer,
            image_size=self.sample_size,
            sampling=self.sampling,
            training_config=to_dict(self.config),
            order=self.order.config(),
        )

    def validate(self, model, step: int, output_dir: Path) -> dict:
        pipe = self.pipeline(model)
        pipe.set_progress_bar_config(disable=True)  # the training bar is the one to watch
        generator = torch.Generator().manual_seed(0)
        if self.config.task == "class_to_image":
            from mmgen.eval.digits_eval import classifier_accuracy, verifier_classifier
            from mmgen.pipelines.outputs import to_output_type

            labels = list(range(self.condition_tokenizer.num_classes))
            out = pipe(labels, num_images_per_class=4, output_type="pt", generator=generator)
            images_unit = out.images * 2 - 1  # (B, 1, H, W) in [-1, 1]
            targets = torch.tensor(labels).repeat_interleave(4)
            accuracy = classifier_accuracy(verifier_classifier(), images_unit, targets)
            images = to_output_type(images_unit, "pil")
            marks, metrics = None, {"validation_accuracy": accuracy}
        elif self.config.task == "text_to_video":
            return self.validate_video(pipe, step, output_dir)
        elif self.config.task == "text_to_audio":
            return self.validate_audio(pipe, step, output_dir)
        elif self.config.data.name == "imagefolder":  # user data: samples, no verifier
            prompts = self.config.validation_prompts
            images = pipe(prompts, num_images_per_prompt=4, generator=generator).images
            marks, metrics = None, {}
        elif self.config.validation_num_prompts > 0:  # shapes, scored like mmgen eval
            return self.validate_like_eval(pipe, step, output_dir)
        else:
            from mmgen.eval.shapes_verifier import verify

            prompts = self.config.validation_prompts
            images = pipe(prompts, num_images_per_prompt=4, generator=generator).images
            marks = [verify(img, prompts[i // 4]).passed for i, img in enumerate(images)]
            metrics = {"validation_pass_rate": sum(marks) / len(marks)}
        folder = output_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        image_grid(images, cols=8, marks=marks, scale=2).save(folder / f"step_{step:07d}.png")
        return metrics

    def validate_like_eval(self, pipe, step: int, output_dir: Path) -> dict:
        """``validation_num_prompts`` prompts scored as ``mmgen eval shapes --seed 1`` does;
        the report goes to ``validations/step_N/``, its sample sheet to ``samples/``."""
        import shutil

        from mmgen.eval.shapes_eval import evaluate_shapes

        report_dir = output_dir / "validations" / f"step_{step:07d}"
        report = evaluate_shapes(
            pipe,
            num_prompts=self.config.validation_num_prompts,
            seed=1,
            out_dir=report_dir,
            show_progress=False,
        )
        (output_dir / "samples").mkdir(parents=True, exist_ok=True)
        shutil.copy2(report_dir / "samples.png", output_dir / "samples" / f"step_{step:07d}.png")
        metrics = {"validation_pass_rate": round(report["overall"], 4)}
        for family, rate in report["families"].items():
            if rate is not None:
                metrics[f"validation_{family}"] = round(rate, 4)
        return metrics

    def validate_video(self, pipe, step: int, output_dir: Path) -> dict:
        """moving-shapes: ``validation_num_prompts`` prompts (default 16) scored as ``mmgen eval
        moving-shapes --seed 1`` does, the contact sheet to ``samples/``; a video folder: one
        clip per validation prompt, frames in rows."""
        folder = output_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        sheet = folder / f"step_{step:07d}.png"
        if self.config.data.name != "moving_shapes":
            out = pipe(self.config.validation_prompts, generator=torch.Generator().manual_seed(0))
            tiles = [frame for clip in out.frames for frame in clip]
            image_grid(tiles, cols=len(out.frames[0]), scale=1).save(sheet)
            return {}
        import shutil

        from mmgen.eval.moving_shapes_eval import evaluate_moving_shapes

        report_dir = output_dir / "validations" / f"step_{step:07d}"
        num_prompts = self.config.validation_num_prompts or 16
        report = evaluate_moving_shapes(pipe, num_prompts=num_prompts, seed=1, out_dir=report_dir,
                                        show_progress=False)  # fmt: skip
        shutil.copy2(report_dir / "contact_sheet.png", sheet)
        metrics = {"validation_pass_rate": round(report["overall"], 4),
                   "validation_frame_pass_rate": round(report["frame_pass_rate"], 4)}  # fmt: skip
        return metrics

    def validate_audio(self, pipe, step: int, output_dir: Path) -> dict:
        """tones: ``validation_num_prompts`` prompts (default 40) scored as ``mmgen eval tones
        --seed 1`` does, its spectrogram sheet to ``samples/``; an audio folder: one clip per
        validation prompt, as WAV files and a spectrogram sheet."""
        folder = output_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        sheet = folder / f"step_{step:07d}.png"
        if self.config.data.name != "tones":
            from mmgen.eval.tones_eval import spectrogram_sheet
            from mmgen.utils.audio import write_wav

            prompts = self.config.validation_prompts
            out = pipe(prompts, generator=torch.Generator().manual_seed(0))
            for i, clip in enumerate(out.audios):
                write_wav(folder / f"step_{step:07d}_{i}.wav", clip, out.sample_rate)
            spectrogram_sheet(out.audios, prompts, sample_rate=out.sample_rate).save(sheet)
            return {}
        import shutil

        from mmgen.eval.tones_eval import evaluate_tones

        report_dir = output_dir / "validations" / f"step_{step:07d}"
        report = evaluate_tones(pipe, num_prompts=self.config.validation_num_prompts or 40,
                                seed=1, out_dir=report_dir, show_progress=False)  # fmt: skip
        shutil.copy2(report_dir / "spectrograms.png", sheet)
        metrics = {"validation_pass_rate": round(report["overall"], 4)}
        for notes, rate in report["by_notes"].items():
            if rate is not None:
                metrics[f"validation_{notes}"] = round(rate, 4)
        return metrics

    def export(self, model, folder: Path) -> dict:
        self.pipeline(model).save_pretrained(folder)
        return {}


def build_task(config: RunConfig):
    """The task object for ``config.task``."""
    if config.task == "match_scorer":
        from mmgen.training.scorer_task import MatchScorerTask

        return MatchScorerTask(config)
    return TokenizerTask(config) if config.task == "tokenizer" else GenerationTask(config)
