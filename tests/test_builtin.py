import pytest
import torch

from mmgen import TextToImagePipeline
from mmgen.builtin import BUILTIN_DIR, BUILTIN_MODELS, component_folder, resolve_model_path
from mmgen.utils.serialization import CheckpointError


def test_every_builtin_model_is_shipped_with_safetensors_weights():
    for name in BUILTIN_MODELS:
        folder = resolve_model_path(name)
        assert folder == BUILTIN_DIR / name
        for component in ("transformer", "vq"):  # its own, or another built-in's (shared.json)
            assert (component_folder(folder, component) / "model.safetensors").is_file()
        assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pkl")]


def test_a_shared_component_is_stored_once_and_loads_the_other_builtins_weights():
    """shapes-t2i-shuffle was trained on the shipped shapes-t2i VQ: shared.json names it."""
    assert not (BUILTIN_DIR / "shapes-t2i-shuffle" / "vq").exists()
    assert component_folder(resolve_model_path("shapes-t2i-shuffle"), "vq") == (
        BUILTIN_DIR / "shapes-t2i" / "vq"
    )
    shuffle = TextToImagePipeline.from_pretrained("shapes-t2i-shuffle")
    plain = TextToImagePipeline.from_pretrained("shapes-t2i")
    for (name, a), b in zip(shuffle.vq.state_dict().items(), plain.vq.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_broken_shared_reference_is_a_checkpoint_error(tmp_path):
    pipe = TextToImagePipeline.from_pretrained("shapes-t2i-shuffle")
    pipe.save_pretrained(tmp_path / "copy")  # a saved copy holds every component itself
    assert (tmp_path / "copy" / "vq" / "model.safetensors").is_file()
    import shutil

    shutil.rmtree(tmp_path / "copy" / "vq")
    (tmp_path / "copy" / "shared.json").write_text('{"vq": "shapes-t2i/no-such-part"}')
    with pytest.raises(CheckpointError, match="no-such-part"):
        TextToImagePipeline.from_pretrained(tmp_path / "copy")


def test_builtin_weights_stay_under_90_mb():
    """The issues' budget was 60 MB; issue 14 allows raising it when a model needs it: the
    text-to-video model's transformer alone is 22 MB in float16 (85 MB), and the match scorer
    of ``shapes-t2i-shuffle`` 4.9 MB, so 90 MB = 90,000,000 bytes."""
    total = sum(p.stat().st_size for p in BUILTIN_DIR.rglob("*") if p.is_file())
    assert total < 90_000_000


def test_moving_shapes_t2v_loads_by_name_and_generates_a_clip():
    """The video default of ``mmgen generate video``: its ``vq`` is the built-in tokenizer
    ``shapes-kl`` (named in shared.json, stored once)."""
    from mmgen import TextToVideoPipeline
    from mmgen.builtin import TOKENIZERS_DIR

    assert component_folder(resolve_model_path("moving-shapes-t2v"), "vq") == (
        TOKENIZERS_DIR / "shapes-kl"
    )
    pipe = TextToVideoPipeline.from_pretrained("moving-shapes-t2v")

    def clip():
        generator = torch.Generator().manual_seed(0)
        return pipe("a red circle moving right", num_frames=2, num_inference_steps=2,
                    output_type="pt", generator=generator).frames  # fmt: skip

    frames = clip()
    assert frames.shape == (1, 2, 3, 64, 64)
    assert torch.equal(frames, clip())


def test_shapes_t2i_loads_by_name_and_generates():
    pipe = TextToImagePipeline.from_pretrained("shapes-t2i")
    images = pipe(
        "a red circle",
        num_images_per_prompt=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert images.shape == (2, 64, 64, 3)
    assert pipe.training_config is not None and pipe.training_config["task"] == "text_to_image"


def test_unknown_name_lists_the_builtin_models():
    with pytest.raises(CheckpointError, match="shapes-t2i"):
        TextToImagePipeline.from_pretrained("no-such-model")


def test_digits_c2i_loads_by_name_and_draws_the_digits_it_is_asked_for():
    from mmgen import ClassToImagePipeline
    from mmgen.eval.digits_eval import classifier_accuracy, verifier_classifier

    pipe = ClassToImagePipeline.from_pretrained("digits-c2i")
    labels = list(range(10))
    images = pipe(labels, num_images_per_class=2, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert images.shape == (20, 1, 32, 32)
    targets = torch.tensor(labels).repeat_interleave(2)
    # the frozen verifier reads the asked-for digit in 19 of these 20 (chance: 2 of 20)
    assert classifier_accuracy(verifier_classifier(), images * 2 - 1, targets) >= 0.85
    assert pipe.training_config is not None and pipe.training_config["task"] == "class_to_image"


def test_tones_t2a_loads_by_name_and_plays_the_notes_it_is_asked_for():
    from mmgen import TextToAudioPipeline
    from mmgen.eval.tones_verifier import verify_tones

    pipe = TextToAudioPipeline.from_pretrained("tones-t2a")
    prompts = ["play C4 E4 G4", "play A4", "play D4 F4 B4 C5"]
    out = pipe(prompts, generator=torch.Generator().manual_seed(0))
    assert out.sample_rate == 16000 and [a.shape for a in out.audios] == [(16000,)] * 3
    assert all(verify_tones(a, p).passed for a, p in zip(out.audios, prompts))
    streamed = list(pipe.stream(prompts[0], generator=torch.Generator().manual_seed(1)))
    assert len(streamed) == 20  # one 50 ms chunk per latent
    assert verify_tones(__import__("numpy").concatenate(streamed), prompts[0]).passed
    assert pipe.training_config["task"] == "text_to_audio"


def test_builtin_tokenizers_load_by_name_as_a_recipes_tokenizer():
    from mmgen.builtin import BUILTIN_TOKENIZERS, TOKENIZERS_DIR, resolve_component_path
    from mmgen.utils.serialization import load_component

    for name in BUILTIN_TOKENIZERS:
        folder = resolve_component_path(name)
        assert folder == TOKENIZERS_DIR / name
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "eval.json",
                                                            "model.safetensors"]  # fmt: skip
    kl = load_component(resolve_component_path("shapes-kl"))
    latents = kl.encode(torch.zeros(2, 3, 64, 64))
    assert latents.shape == (2, 4, 16, 16)
    assert kl.decode(latents).shape == (2, 3, 64, 64)
