"""Give a trained next-scale pipeline (VAR's ``next_scale`` or FlowAR's ``continuous_next_scale``)
a new scale schedule, as the start of a fine-tuning run.

    python tools/reschedule_scales.py --source mmgen/builtin/shapes-t2i-scale \
        --scales 1 2 3 4 8 16 --out runs/msvq_s6/pipe

The output is a copy of the pipeline folder whose scales are the new ones (the multi-scale VQ's
``scales``, or the order's ``scales`` for a continuous tokenizer; the tokenizer's weights are
unchanged, so check its reconstruction with ``mmgen eval tokenizer``) and whose transformer
input projection has one level column per new scale: a scale the old schedule had keeps its
trained column (its level embedding), a new one starts at zero. Every other tensor is copied as
it is. Point a recipe's ``tokenizer:`` at ``OUT/vq`` and ``init_from:`` at ``OUT/transformer``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

#: the input projection whose last columns are the order's one-hot of the scale (level)
LEVEL_PROJECTION = "inputs.proj.weight"


def level_columns(old_scales: list[int], new_scales: list[int]) -> list[int | None]:
    """For each new scale, the index of the same scale in the old schedule (None: new)."""
    return [old_scales.index(p) if p in old_scales else None for p in new_scales]


def reschedule(source: Path, scales: list[int], out: Path) -> dict:
    """Write ``source`` with the scale schedule ``scales`` to ``out``; returns what changed."""
    import torch

    from mmgen.utils.serialization import load_state_dict, save_state_dict

    if out.exists():
        raise FileExistsError(f"{out} exists; give a new folder")
    index = json.loads((source / "model_index.json").read_text())
    order = index.get("order", {})
    if order.get("name") not in ("next_scale", "continuous_next_scale"):
        raise ValueError(f"{source}: order {order.get('name')!r} is not a next-scale order")
    if (source / "shared.json").is_file():  # a built-in's tokenizer stored in another folder
        raise ValueError(f"{source}: components shared with another built-in (shared.json)")
    shutil.copytree(source, out)
    tokenizer_config_path = out / "vq" / "config.json"
    tokenizer_config = json.loads(tokenizer_config_path.read_text())
    if order["name"] == "next_scale":
        old = list(tokenizer_config["scales"])
        tokenizer_config["scales"] = list(scales)
        tokenizer_config_path.write_text(json.dumps(tokenizer_config, indent=2))
    else:
        if "scales" not in order:
            raise ValueError(f"{source}: model_index.json's order has no 'scales' to replace")
        old = list(order["scales"])
        index["order"]["scales"] = list(scales)
        (out / "model_index.json").write_text(json.dumps(index, indent=2))
    weights_path = out / "transformer" / "model.safetensors"
    weights = load_state_dict(weights_path)
    projection = weights[LEVEL_PROJECTION]  # (D, C + K_old)
    channels = projection.shape[1] - len(old)
    columns = [projection[:, :channels]]
    for k in level_columns(old, scales):
        columns.append(projection[:, channels + k : channels + k + 1] if k is not None
                       else torch.zeros_like(projection[:, :1]))  # fmt: skip
    weights[LEVEL_PROJECTION] = torch.cat(columns, dim=1).contiguous()  # (D, C + K_new)
    save_state_dict(weights, weights_path)
    config_path = out / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["input"]["in_channels"] = channels + len(scales)
    config_path.write_text(json.dumps(config, indent=2))
    return {"old_scales": old, "new_scales": list(scales),
            "kept_levels": [p for p in scales if p in old]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="pipeline folder or built-in name")
    parser.add_argument("--scales", type=int, nargs="+", required=True, help="new scale sides")
    parser.add_argument("--out", required=True, help="new pipeline folder")
    args = parser.parse_args(argv)
    from mmgen.builtin import resolve_model_path
    from mmgen.pipelines.text_to_image import TextToImagePipeline

    report = reschedule(resolve_model_path(args.source), args.scales, Path(args.out))
    TextToImagePipeline.from_pretrained(args.out)  # the new schedule is a valid one
    print(f"scales {report['old_scales']} -> {report['new_scales']}; level columns kept for "
          f"{report['kept_levels']}; written to {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
