"""tools/bench_orders.py: the flow-steps sweep runs the pipeline at each step count and puts its
defaults back; the tables and verdicts read the rows they are given."""

import sys
import time
from pathlib import Path

import pytest
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


def test_generation_speed_is_the_median_of_timed_calls_after_an_untimed_one(monkeypatch):
    """One call counts the backbone calls, one warms the timed batch up (untimed), then the
    median of ``repeats`` timed calls: a slow first or outlier call does not move it."""

    class FakePipe:
        device = torch.device("cpu")

        def __init__(self):
            self.transformer = torch.nn.Identity()
            self.batches = []

        def set_progress_bar_config(self, **kwargs):
            pass

        def __call__(self, prompts, generator):
            self.batches.append(1 if isinstance(prompts, str) else len(prompts))
            self.transformer(torch.zeros(1))  # one backbone call per pipeline call

    durations = iter([9.0, 1.0, 7.0, 2.0])  # warm-up, then three timed calls
    clock = {"now": 0.0, "running": False}

    def perf_counter():
        if clock["running"]:
            clock["now"] += next(durations)
        clock["running"] = not clock["running"]
        return clock["now"]

    monkeypatch.setattr(time, "perf_counter", perf_counter)
    pipe = FakePipe()
    calls, seconds = bench_orders.generation_speed(pipe, num_images=4, repeats=3)
    assert calls == 1 and pipe.batches == [1, 4, 4, 4, 4]
    assert seconds == 2.0  # median of 1, 7, 2; the 9 s warm-up is not counted


def test_a_device_this_machine_lacks_is_a_usage_error_before_any_work(monkeypatch):
    from mmgen.cli.errors import UsageError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="no CUDA GPU"):
        bench_orders.main(["--untrained", "--device", "cuda"])
