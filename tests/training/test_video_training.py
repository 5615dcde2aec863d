"""Training text-to-video (next-frame) through ``mmgen train``: moving-shapes clips and a user's
video folder, exact resume, the saved pipeline generating clips."""

import json

import pytest
import torch
from PIL import Image
from training_recipes import (
    losses,
    resumed_step,
    run,
    run_full_and_split,
    tiny_training,
    write,
)

from mmgen import TextToVideoPipeline
from mmgen.pipelines.ar_image import ARImagePipeline


def t2v_recipe(tmp_path, tokenizer, name="t2v", data=None, order=None, head=None, **training):
    """A tiny text-to-video recipe; ``order`` and ``head`` add options to the next-frame order
    and the group flow head, ``training`` to the training section."""
    return write(
        tmp_path / f"{name}.yaml",
        {
            "task": "text_to_video",
            "output_dir": str(tmp_path / name),
            "tokenizer": str(tokenizer),
            "order": {"name": "next_frame", "patch": 2, **(order or {})},
            "text_max_length": 32,
            "data": data or {"name": "moving_shapes", "num_samples": 8, "num_frames": 3},
            "model": {
                "preset": "debug",
                "num_heads": 1,
                "rope": "mmrope",
                "head": {"width": 32, "depth": 1, "num_heads": 2, **(head or {})},
            },  # fmt: skip
            "validation_num_prompts": 2,
            "validation_prompts": ["a red square moving right"],
            "training": tiny_training(lr_schedule="constant", **training),
        },
    )


def test_next_frame_trains_resumes_exactly_and_the_run_generates_clips(trained_kl, tmp_path,
                                                                       capsys):  # fmt: skip
    printed, validation = run_full_and_split(
        lambda name: t2v_recipe(tmp_path, trained_kl, name=name), capsys
    )
    assert resumed_step(printed) == 2
    assert "encoded data: 8 examples" in printed  # the second run hit the shared cache
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    assert 0 <= validation["validation_frame_pass_rate"] <= 1  # scored like the eval
    assert (tmp_path / "split" / "samples" / "step_0000004.png").is_file()
    pipe = ARImagePipeline.from_pretrained(tmp_path / "split" / "final")
    assert isinstance(pipe, TextToVideoPipeline) and pipe.num_frames == 3
    assert pipe.order.config()["patch"] == 2
    out = pipe(["a red circle moving left"], num_frames=4, num_inference_steps=2,
               output_type="pt", generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.frames.shape == (1, 4, 3, 64, 64)


def test_a_video_folder_trains_the_same_way(trained_kl, tmp_path):
    from mmgen.data.moving_shapes import MovingShapesDataset
    from mmgen.utils.video import write_video

    folder = tmp_path / "videos"
    clips = MovingShapesDataset(3, seed=5, num_frames=4)
    lines = []
    for i in range(3):
        item = clips[i]
        frames = [__import__("PIL.Image").Image.fromarray(f.permute(1, 2, 0).numpy())
                  for f in item["frames"]]  # fmt: skip
        write_video(frames, folder / f"clip{i}.gif", fps=4)
        lines.append(json.dumps({"file_name": f"clip{i}.gif", "text": item["prompt"]}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    data = {"name": "videofolder", "path": str(folder), "num_frames": 4}
    run(t2v_recipe(tmp_path, trained_kl, name="user", data=data, max_steps=2))
    assert sorted(losses(tmp_path / "user")) == [1, 2]
    assert (tmp_path / "user" / "samples" / "step_0000002.png").is_file()
    pipe = TextToVideoPipeline.from_pretrained(tmp_path / "user" / "final")
    assert pipe.num_frames == 4


def test_a_long_context_order_trains_scoring_only_frame_rows(trained_kl, tmp_path):
    recipe = t2v_recipe(
        tmp_path, trained_kl, name="long", max_steps=2, order={"long_window": 1, "long_patch": 4}
    )  # frame 0 long-term in group 2
    run(recipe)
    assert sorted(losses(tmp_path / "long")) == [1, 2]
    assert all(loss == loss for loss in losses(tmp_path / "long").values())  # finite, not NaN
    pipe = TextToVideoPipeline.from_pretrained(tmp_path / "long" / "final")
    assert pipe.order.layout.context_rows == (0, 0, 4)
    out = pipe(["a red circle moving left"], num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.frames.shape == (1, 3, 3, 64, 64)


def test_first_group_weight_weighs_the_first_frame_in_the_loss(trained_kl, tmp_path):
    """Step 1's loss is the same model on the same batch and noise in every run, so with the
    first frame weighted w it is (w * L0 + S) / (w + F - 1): a huge w gives frame 0's loss L0,
    w = 1 the plain mean, and together they predict w = 3 (no clean-context frames, so every
    frame counts)."""
    step1 = {}
    for w in (1.0, 3.0, 1e6):
        name = f"w{w:g}"
        recipe = t2v_recipe(tmp_path, trained_kl, name=name, max_steps=1, first_group_weight=w,
                            order={"clean_context_prob": 0.0})  # fmt: skip
        run(recipe)
        step1[w] = losses(tmp_path / name)[1]
    frames = 3
    first = step1[1e6]
    rest = frames * step1[1.0] - first  # S: the other frames' summed losses
    assert abs(first - step1[1.0]) > 1e-3 * step1[1.0]  # frame 0 differs from the mean
    assert step1[3.0] == pytest.approx((3 * first + rest) / (3 + frames - 1), rel=1e-4)


def test_a_head_that_reads_the_rows_inputs_trains_and_generates(trained_kl, tmp_path):
    """``model.head.reads_inputs``: the group flow head also reads each row's backbone input
    (the previous frame at the same place); the saved pipeline rebuilds it, generation feeds
    it the same rows as training (the cached and the recomputed paths agree), and what it
    reads changes what it draws."""
    recipe = t2v_recipe(tmp_path, trained_kl, name="reads", max_steps=2,
                        head={"reads_inputs": True})  # fmt: skip
    run(recipe)
    pipe = TextToVideoPipeline.from_pretrained(tmp_path / "reads" / "final")
    head = pipe.transformer.head
    assert head.input_channels == pipe.order.channels + 1  # the fed rows and their indicator

    def clip(**kwargs):
        return pipe(["a red circle moving left"], num_inference_steps=2, output_type="latent",
                    generator=torch.Generator().manual_seed(0), **kwargs).frames  # fmt: skip

    cached = clip()
    assert torch.allclose(cached, clip(use_cache=False), atol=1e-5)
    with torch.no_grad():
        head.inputs_in.weight.add_(0.5)
    assert not torch.allclose(cached, clip(), atol=1e-3)


def test_context_noise_noises_the_fed_frames_of_every_training_step(trained_kl, tmp_path,
                                                                    monkeypatch):  # fmt: skip
    """``training.context_noise`` s: every step's fed frames go through the order's
    ``noised_inputs`` with per-sample standard deviations in [0, s], and the model trains on
    what it returns."""
    from mmgen.orders.next_frame import NextFrameOrder

    calls, original = [], NextFrameOrder.noised_inputs

    def noised_inputs(self, inputs, sigma_B, generator):
        out = original(self, inputs, sigma_B, generator)
        calls.append((sigma_B.clone(), (out - inputs).abs().max().item()))
        return out

    monkeypatch.setattr(NextFrameOrder, "noised_inputs", noised_inputs)
    run(t2v_recipe(tmp_path, trained_kl, name="noised", max_steps=2, context_noise=0.3))
    assert len(calls) == 2
    for sigma, change in calls:
        assert sigma.shape == (4,) and 0 <= sigma.min() and sigma.max() <= 0.3
        assert change > 0


def test_first_frame_scales_train_reload_and_continue_given_frames(trained_kl, tmp_path):
    """``order.first_frame_scales``: the recipe trains, the saved pipeline rebuilds the order
    and its head's group shapes, and generates and continues clips (the given frame's scales
    computed from it: ``tests/generation/test_first_frame_scales.py`` checks what they are)."""
    recipe = t2v_recipe(tmp_path, trained_kl, name="scales", max_steps=2,
                        order={"first_frame_scales": [1]})  # fmt: skip
    run(recipe)
    pipe = TextToVideoPipeline.from_pretrained(tmp_path / "scales" / "final")
    assert pipe.order.first_frame_scales == (1,)
    assert pipe.transformer.head.group_shapes[:2] == [(1, 1), (4, 4)]

    def clip(**kwargs):
        return pipe(["a red circle moving left"], num_inference_steps=2, output_type="pt",
                    generator=torch.Generator().manual_seed(0), **kwargs).frames  # fmt: skip

    frames = clip()
    assert frames.shape == (1, 3, 3, 64, 64)
    torch.testing.assert_close(frames, clip(use_cache=False), atol=1e-4, rtol=1e-4)
    first = [Image.fromarray(
        (frames[0, 0].permute(1, 2, 0).numpy() * 255).round().astype("uint8"))]  # fmt: skip
    continued = clip(frames=first)
    assert continued.shape == (1, 3, 3, 64, 64)


def test_first_group_weight_covers_frame_zero_and_its_first_frame_scales(trained_kl, tmp_path):
    """With ``first_frame_scales`` frame 0 is made by its scale groups and its own: the task's
    loss weights put ``first_group_weight`` on all of their rows and on nothing after."""
    from mmgen.training.config import load_run_config
    from mmgen.training.tasks import build_task

    recipe = t2v_recipe(tmp_path, trained_kl, name="weights", first_group_weight=4.0,
                        order={"first_frame_scales": [1]})  # fmt: skip
    task = build_task(load_run_config(recipe))
    layout = task.order.token_layout
    clip = torch.randn(layout.token_shape(2))
    _, targets = task.order.training_inputs(clip)
    weights = task.row_weights(targets)
    first = 1 + task.order.frame_rows  # the 1 x 1 map's row and frame 0's
    expected = torch.ones(targets.shape[1])
    expected[:first] = 4.0
    assert torch.equal(weights, expected)


def test_a_one_frame_sequence_is_the_prefix_of_its_clip(trained_kl, tmp_path):
    """``training.first_frame_batch`` trains frame 0 on one-frame sequences: the same order
    for one frame lays out the clip's first rows (prompt, frame 0's scale groups, frame 0)
    with the same positions and mask, is fed and scored the same rows, and the model's hidden
    states there equal the clip's (frame 0 sees nothing after it)."""
    from mmgen.training.config import load_run_config
    from mmgen.training.tasks import build_task

    recipe = t2v_recipe(tmp_path, trained_kl, name="prefix", first_frame_batch=2,
                        order={"first_frame_scales": [1]})  # fmt: skip
    task = build_task(load_run_config(recipe))
    clip_order, frame_order = task.order, task.first_frame_order
    assert frame_order.num_frames == 1 and clip_order.num_frames == 3
    clip_layout, frame_layout = clip_order.layout, frame_order.layout
    n = frame_layout.length  # 32 prompt rows, the 1 x 1 map's row, frame 0's 16
    assert n == 32 + 1 + clip_order.frame_rows
    assert torch.equal(frame_layout.positions, clip_layout.positions[:n])
    assert torch.equal(frame_layout.kv_end, clip_layout.kv_end[:n])
    clip = torch.randn(clip_order.token_layout.token_shape(2))  # (2, 3 frames' latents, C)
    tokens = clip_order.frame_layout.tokens_per_frame
    inputs, targets = clip_order.training_inputs(clip)
    frame_inputs, frame_targets = frame_order.training_inputs(clip[:, :tokens])
    rows = frame_inputs.shape[1]
    assert torch.equal(frame_inputs, inputs[:, :rows])
    assert torch.equal(frame_targets, targets[:, :rows])
    model = task.build_model().eval()
    ids = torch.randint(task.model_config.condition_vocab_size, (2, 32),
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    with torch.no_grad():
        whole = model(clip_layout.positions, clip_layout.kv_end, condition_ids=ids,
                      inputs=inputs)  # fmt: skip
        prefix = model(frame_layout.positions, frame_layout.kv_end, condition_ids=ids,
                       inputs=frame_inputs)  # fmt: skip
    torch.testing.assert_close(prefix, whole[:, :n], atol=1e-5, rtol=1e-5)


def test_first_frame_batch_adds_the_one_frame_loss_and_resumes_exactly(
    trained_kl, tmp_path, capsys, monkeypatch
):
    """With ``first_frame_batch`` n each step also trains n one-frame sequences drawn from
    ``first_frame_samples`` one-frame clips (a second entry of the shared cache), after every
    draw of the clips: step 1's clip loss is the run without them, plus exactly the model's
    loss on the one-frame sequences it was given. Resume stays exact."""
    from mmgen.models.transformer import ARTransformer

    extra_losses, original = [], ARTransformer.forward

    def forward(self, *args, extra_sequences=None, **kwargs):
        if extra_sequences is not None:
            with torch.no_grad():
                extra_losses.append(original(self, **extra_sequences).item())
            rows = extra_sequences["inputs"].shape[:2]
            assert rows == (3, 1 + 16)  # 3 sequences: the 1 x 1 map's row, frame 0's 16
        return original(self, *args, extra_sequences=extra_sequences, **kwargs)

    monkeypatch.setattr(ARTransformer, "forward", forward)
    common = {"order": {"first_frame_scales": [1], "clean_context_prob": 0.0}}
    run(t2v_recipe(tmp_path, trained_kl, name="plain", max_steps=1, **common))
    assert extra_losses == []
    printed, _ = run_full_and_split(
        lambda name: t2v_recipe(tmp_path, trained_kl, name=name, first_frame_batch=3,
                                first_frame_samples=6, **common),
        capsys,
    )  # fmt: skip
    assert resumed_step(printed) == 2
    assert "encoded data: 6 examples" in printed  # the one-frame clips, from the shared cache
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    plain, with_frames = losses(tmp_path / "plain")[1], losses(tmp_path / "full")[1]
    assert extra_losses[0] > 0
    assert with_frames == pytest.approx(plain + extra_losses[0], rel=1e-5)


def test_first_frame_batch_without_samples_draws_the_training_clips_first_frames(
    trained_kl, tmp_path
):
    """With no ``first_frame_samples`` the pool is the training clips' own first frames and
    prompts (no second data set encoded)."""
    from accelerate import Accelerator
    from training_recipes import reset_accelerate

    from mmgen.training.config import load_run_config
    from mmgen.training.tasks import build_task

    reset_accelerate()
    task = build_task(load_run_config(t2v_recipe(tmp_path, trained_kl, name="own",
                                                 first_frame_batch=2)))  # fmt: skip
    task.prepare_data(Accelerator(cpu=True))
    reset_accelerate()
    tokens = task.order.frame_layout.tokens_per_frame
    assert torch.equal(task.first_frames, task.codes[:, :tokens])
    assert task.first_frame_ids is task.condition_ids
