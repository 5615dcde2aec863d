"""tools/bench_orders.py: the flow-steps sweep runs the pipeline at each step count and puts its
defaults back; the tables and verdicts read the rows they are given."""

import sys
from pathlib import Path

import torch
from conftest import CONTINUOUS_ORDER_SPECS, make_tiny_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import bench_orders  # noqa: E402


def test_the_flow_steps_sweep_uses_each_step_count_and_restores_the_defaults():
    pipe = make_tiny_pipeline(order=CONTINUOUS_ORDER_SPECS["continuous_next_scale"],
                              continuous=True)  # fmt: skip
    seen = []
    head_sample = pipe.transformer.head.sample

    def record(outputs, batch_size, scale, sampling, generator):
        seen.append(sampling.num_inference_steps)
        return head_sample(outputs, batch_size, scale, sampling, generator)

    pipe.transformer.head.sample = record
    default = pipe.sampling
    sweep = bench_orders.flow_steps_sweep(pipe, [1, 3], num_prompts=2, seed=0, num_images=1)
    assert [p["steps"] for p in sweep] == [1, 3]
    assert all(0 <= p["pass_rate"] <= 1 and p["s_per_image"] > 0 for p in sweep)
    assert set(seen) == {1, 3} and pipe.sampling is default
    rows = {"continuous_next_scale": {"flow_steps": sweep}, "next_token": {"flow_steps": None}}
    table = bench_orders.flow_table(rows)
    assert table.count("| continuous_next_scale |") == 2 and "next_token" not in table
    assert torch.is_tensor(pipe("a red circle", output_type="latent", num_inference_steps=1,
                                generator=torch.Generator().manual_seed(0)).images)  # fmt: skip


def test_verdicts_judge_only_the_rows_measured():
    base = {"generate_s": 10.0, "pass_rate": 0.5, "step_samples_per_s": 10.0}
    shuffle = {"generate_s": 2.0, "pass_rate": 0.48, "step_samples_per_s": 30.0}
    checks = dict(bench_orders.verdicts({"next_token": base, "token_shuffle": shuffle}))
    assert len(checks) == 3 and all(checks.values())
    slow = dict(shuffle, generate_s=5.0)
    assert not all(
        dict(bench_orders.verdicts({"next_token": base, "token_shuffle": slow})).values()
    )
