"""The ``match_scorer`` task: a prompt-image match scorer for a trained text-to-image pipeline.

Positives are the data set's images (its codes under the pipeline's tokenizer, from the shared
encoded-data cache) with their own prompts. Negatives: the same images with one prompt word
swapped (:func:`corrupt_condition_ids`) and, on ``shapes`` with ``scorer.near_misses`` N, the
first N prompts' rendered near misses (``mmgen.data.near_miss``: a wrong colour, shape, count
or relation, an object missing or extra), with ``scorer.near_miss_prompts``, the images
with a near-miss prompt (one change away from the scene, drawn at each step) and, with
``scorer.near_misses_from_data``, the prompts with another training image whose own prompt is
a near-miss prompt of theirs (drawn at each step). The loss is
binary cross-entropy, positives weighed as much as all negatives together. The export is the
pipeline with the scorer added (``scorer/``) and the recipe's ``sampling``
(``num_candidates``) over its defaults: a pipeline that keeps the best of its candidates.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.models.match_scorer import MatchScorer, MatchScorerConfig, corrupt_condition_ids
from mmgen.training.config import RunConfig
from mmgen.training.tasks import load_encoded_data
from mmgen.utils.config import ConfigError, from_dict

#: tokenizer attributes naming ids that are not words
SPECIAL_ID_NAMES = ("pad_id", "bos_id", "eos_id", "unk_id")
#: held-out examples scored per scorer call at validation
VALIDATION_CHUNK = 250
#: near-miss prompts drawn for a prompt before giving up on finding a data image of one
NEAR_MISS_TRIES = 8


class MatchScorerTask:
    """Train a :class:`MatchScorer` for the pipeline ``config.pipeline`` (see the module
    docstring)."""

    def __init__(self, config: RunConfig):
        from mmgen.pipelines.text_to_image import TextToImagePipeline

        self.config = config
        self.pipe = TextToImagePipeline.from_pretrained(config.pipeline)
        layout = self.pipe.order.token_layout
        if layout.scales is not None or layout.is_continuous or layout.frames is not None:
            raise ConfigError(
                f"pipeline: a match scorer reads one grid of codes; {config.pipeline}'s "
                f"tokenizer gives {layout}"
            )
        tokenizer = self.pipe.text_tokenizer
        sizes = {
            "condition_vocab_size": tokenizer.vocab_size,
            "condition_length": tokenizer.max_length,
            "num_codes": layout.codebook_size,
            "grid": tuple(layout.grid),
            "pad_id": getattr(tokenizer, "pad_id", None),
            "condition_vocab": getattr(tokenizer, "vocabulary", None),
        }
        fixed = sorted(set(config.model) & set(sizes))
        if fixed:
            raise ConfigError(f"model: {fixed} come from the pipeline; set only window, dim, "
                              "depth, num_heads")  # fmt: skip
        try:
            self.scorer_config = from_dict(MatchScorerConfig, {**sizes, **config.model},
                                           where="model")  # fmt: skip
        except ValueError as err:
            raise ConfigError(f"model: {err}") from None
        if self.scorer_config.objective == "caption":  # positives only: no negatives to draw
            for key in ("near_misses", "near_miss_prompts", "near_misses_from_data"):
                if getattr(config.scorer, key):
                    raise ConfigError(
                        f"scorer.{key}: negatives are for model.objective "
                        "'match'; a 'caption' scorer trains on positives only"
                    )
        self.special_ids = {getattr(tokenizer, n) for n in SPECIAL_ID_NAMES
                            if hasattr(tokenizer, n)}  # fmt: skip
        for key in ("near_misses", "near_miss_prompts", "near_misses_from_data"):
            if getattr(config.scorer, key) and config.data.name != "shapes":
                raise ConfigError(f"scorer.{key} is for shapes scenes, not {config.data.name}")

    def build_model(self) -> nn.Module:
        return MatchScorer(self.scorer_config)

    def prepare_data(self, accelerator) -> int:
        """Codes and prompt ids of the data set (and of its near misses); returns the number of
        training examples (the held-out ones excluded)."""
        c = self.config
        layout, vq = self.pipe.order.token_layout, self.pipe.vq
        self.codes, captions = load_encoded_data(c.cache_dir, vq, layout, c.data, accelerator,
                                                 compile=c.training.compile)  # fmt: skip
        self.condition_ids = self.pipe.text_tokenizer(captions)  # (N, T)
        self.captions = captions
        self.near_miss_codes = None
        pool = len(captions)
        if c.scorer.near_misses:
            pool = c.scorer.near_misses
            if pool > len(captions):
                raise ConfigError(f"scorer.near_misses {pool} > data.num_samples {len(captions)}")
            near_miss_data = dataclasses.replace(c.data, num_samples=pool, near_miss=True)
            self.near_miss_codes, near_miss_captions = load_encoded_data(
                c.cache_dir, vq, layout, near_miss_data, accelerator, compile=c.training.compile
            )
            if near_miss_captions != captions[:pool]:
                raise RuntimeError("near misses were drawn for other prompts than the data's")
        if c.scorer.held_out >= pool:
            raise ConfigError(f"scorer.held_out {c.scorer.held_out} leaves no training examples "
                              f"of {pool}")  # fmt: skip
        self.held_out = torch.arange(pool - c.scorer.held_out, pool)
        num_train = pool - c.scorer.held_out
        self.images_by_caption = {}  # training caption -> indices of its training images
        if c.data.name == "shapes":  # trained on with scorer.near_misses_from_data, else measured
            by_caption = {}
            for i, caption in enumerate(captions[:num_train]):
                by_caption.setdefault(caption, []).append(i)
            self.images_by_caption = {k: torch.tensor(v) for k, v in by_caption.items()}
        return num_train

    def get_batch(self, indices, device) -> dict:
        batch = {
            "condition_ids": self.condition_ids[indices].to(device),
            "codes": self.codes[indices].to(device, torch.long),
        }
        if self.near_miss_codes is not None:
            batch["near_miss_codes"] = self.near_miss_codes[indices].to(device, torch.long)
        if self.config.scorer.near_miss_prompts or self.config.scorer.near_misses_from_data:
            batch["prompts"] = [self.captions[i] for i in indices.tolist()]
        return batch

    def near_miss_prompt_ids(self, prompts: list[str], generator) -> torch.Tensor:
        """(B, T) ids of a near-miss prompt for each of ``prompts`` (shapes prompts)."""
        from mmgen.data.near_miss import near_miss_prompt
        from mmgen.data.shapes import parse_prompt

        misses = [near_miss_prompt(parse_prompt(p), generator).text for p in prompts]
        return self.pipe.text_tokenizer(misses)

    def near_miss_image_indices(self, prompts: list[str], generator):
        """For each of ``prompts`` a training image of one of its near-miss prompts.

        Returns:
            indices (B,) into the data set's codes and found (B,) bool: False where
            ``NEAR_MISS_TRIES`` near-miss prompts had no training image (index 0 then).
        """
        from mmgen.data.near_miss import near_miss_prompt
        from mmgen.data.shapes import parse_prompt

        indices = torch.zeros(len(prompts), dtype=torch.long)
        found = torch.zeros(len(prompts), dtype=torch.bool)
        for b, text in enumerate(prompts):
            prompt = parse_prompt(text)
            for _ in range(NEAR_MISS_TRIES):
                images = self.images_by_caption.get(near_miss_prompt(prompt, generator).text)
                if images is not None:
                    pick = torch.randint(len(images), (1,), generator=generator)
                    indices[b], found[b] = images[pick], True
                    break
        return indices, found

    @staticmethod
    def wrong_relation_rows(prompts: list[str]) -> tuple[list[int], list[str]]:
        """For each relation prompt of ``prompts`` (two different objects), its index and the
        text of each prompt that states its relation wrongly
        (``mmgen.data.near_miss.wrong_relations``)."""
        from mmgen.data.near_miss import wrong_relations
        from mmgen.data.shapes import parse_prompt

        rows, texts = [], []
        for k, text in enumerate(prompts):
            prompt = parse_prompt(text)
            if prompt.family != "relation" or len(set(prompt.objects)) < 2:
                continue
            for wrong in wrong_relations(prompt):
                rows.append(k)
                texts.append(wrong.text)
        return rows, texts

    def loss(self, model, batch, generator):
        ids, codes = batch["condition_ids"], batch["codes"]  # (B, T), (B, N)
        c = self.scorer_config
        rows = (c.grid[0] // c.window) * (c.grid[1] // c.window) + c.condition_length
        if c.objective == "caption":  # cross-entropy of each prompt's ids after the first
            targets = (ids[:, 1:] != c.pad_id).sum()
            return -model(ids, codes).float().sum() / targets, {"tokens": len(ids) * rows}
        swapped = corrupt_condition_ids(ids.cpu(), self.special_ids, generator).to(ids.device)
        rows_ids, rows_codes = [ids, swapped], [codes, codes]
        if "near_miss_codes" in batch:
            rows_ids.append(ids)
            rows_codes.append(batch["near_miss_codes"])
        if self.config.scorer.near_miss_prompts:
            rows_ids.append(self.near_miss_prompt_ids(batch["prompts"], generator).to(ids.device))
            rows_codes.append(codes)
        B = len(ids)
        negative_weights = [torch.ones(B)] * (len(rows_ids) - 1)
        if self.config.scorer.near_misses_from_data:
            others, found = self.near_miss_image_indices(batch["prompts"], generator)
            rows_ids.append(ids)
            rows_codes.append(self.codes[others].to(codes.device, torch.long))
            negative_weights.append(found.float())  # a prompt without one: a row of weight 0
        logits = model(torch.cat(rows_ids), torch.cat(rows_codes)).float()  # (K * B,)
        kinds = len(rows_ids) - 1
        labels = torch.cat([torch.ones(B), torch.zeros(kinds * B)]).to(logits.device)
        weights = torch.cat([torch.full((B,), float(kinds)), *negative_weights])
        loss = F.binary_cross_entropy_with_logits(logits, labels, weight=weights.to(logits.device))
        return loss, {"tokens": logits.numel() * (1 + rows)}  # and the summary row

    @torch.no_grad()
    def held_out_accuracies(self, model) -> dict:
        """Pairwise accuracy on the held-out examples: how often the true pair scores above its
        word-swapped prompt (and above its near miss, its near-miss prompt, a training image of
        a near-miss prompt and, on relation prompts, the relation stated wrongly); the draws
        come from fixed seeds."""
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(0)
        data_generator = torch.Generator().manual_seed(1)  # its own: the other draws unchanged
        wins = {"swap_accuracy": [], "near_miss_accuracy": [], "near_miss_prompt_accuracy": [],
                "data_near_miss_accuracy": [], "relation_accuracy": []}  # fmt: skip
        for chunk in self.held_out.split(VALIDATION_CHUNK):
            ids = self.condition_ids[chunk]
            codes = self.codes[chunk].to(device, torch.long)
            positive = model(ids.to(device), codes)
            swapped = corrupt_condition_ids(ids, self.special_ids, generator).to(device)
            wins["swap_accuracy"].append(positive > model(swapped, codes))
            if self.near_miss_codes is not None:
                near_miss = self.near_miss_codes[chunk].to(device, torch.long)
                wins["near_miss_accuracy"].append(positive > model(ids.to(device), near_miss))
            if self.config.data.name == "shapes":  # measured whether trained on or not
                prompts = [self.captions[i] for i in chunk.tolist()]
                misses = self.near_miss_prompt_ids(prompts, generator).to(device)
                wins["near_miss_prompt_accuracy"].append(positive > model(misses, codes))
                rows, wrong = self.wrong_relation_rows(prompts)
                if rows:  # the relation stated wrongly: what reranking relations needs
                    rows = torch.tensor(rows, device=device)
                    wrong_ids = self.pipe.text_tokenizer(wrong).to(device)
                    wins["relation_accuracy"].append(positive[rows] > model(wrong_ids, codes[rows]))
                others, found = self.near_miss_image_indices(prompts, data_generator)
                other_codes = self.codes[others].to(device, torch.long)
                wins["data_near_miss_accuracy"].append(
                    (positive > model(ids.to(device), other_codes))[found.to(device)]
                )
        return {k: round(torch.cat(v).float().mean().item(), 4) for k, v in wins.items() if v}

    def validate(self, model, step: int, output_dir: Path) -> dict:
        return self.held_out_accuracies(model)  # the trainer hands over the model in eval mode

    def pipeline(self, model):
        """The run's pipeline with ``model`` as its scorer and the recipe's sampling defaults."""
        components = {**self.pipe.components, "scorer": model}
        sampling = dataclasses.replace(self.pipe.sampling, **self.config.sampling)
        return type(self.pipe)(**components, image_size=self.pipe.image_size, sampling=sampling,
                               training_config=self.pipe.training_config)  # fmt: skip

    def export(self, model, folder: Path) -> dict:
        import yaml

        from mmgen.utils.config import to_dict

        pipe = self.pipeline(model)
        pipe.resolve_sampling()  # the recipe's sampling must be valid for the pipeline
        pipe.save_pretrained(folder)
        (folder / "scorer" / "training_config.yaml").write_text(
            yaml.safe_dump(to_dict(self.config))
        )
        return self.held_out_accuracies(model)
