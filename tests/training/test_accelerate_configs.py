"""The shipped accelerate launch configs load with accelerate's own parser."""

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind", "processes"),
    [("single_gpu", "NO", 1), ("multi_gpu", "MULTI_GPU", 8), ("fsdp", "FSDP", 8)],
)
def test_launch_config_parses(name, kind, processes):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.value == kind
    assert config.num_processes == processes
    assert config.use_cpu is False
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "DecoderBlock"
