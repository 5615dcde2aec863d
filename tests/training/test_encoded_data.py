"""The encoded-data cache: shared between runs, keyed by tokenizer weights and data spec."""

import torch
from training_recipes import reset_accelerate, run, t2i_recipe

from mmgen.training.config import DataConfig
from mmgen.training.encoded_data import EncodedDataCache
from mmgen.utils.serialization import load_component, load_state_dict, save_module


def final_vq(trained_vq):
    return load_component(trained_vq[0] / "final")


def test_key_follows_tokenizer_weights_and_data_spec(tmp_path, trained_vq):
    vq = final_vq(trained_vq)
    data = DataConfig(num_samples=32)
    base = EncodedDataCache(tmp_path, vq, data).folder
    assert (
        EncodedDataCache(tmp_path, final_vq(trained_vq), DataConfig(num_samples=32)).folder == base
    )
    assert EncodedDataCache(tmp_path, vq, DataConfig(num_samples=33)).folder != base
    assert EncodedDataCache(tmp_path, vq, DataConfig(num_samples=32, seed=1)).folder != base
    clips = DataConfig(name="moving_shapes", num_samples=32)
    weighted = DataConfig(name="moving_shapes", num_samples=32, two_object_weight=2)
    clips_key = EncodedDataCache(tmp_path, vq, clips).folder
    assert EncodedDataCache(tmp_path, vq, weighted).folder not in (clips_key, base)
    heavy = DataConfig(num_samples=32, family_weights={"pair": 3})
    heavier = DataConfig(num_samples=32, family_weights={"pair": 4})
    heavy_key = EncodedDataCache(tmp_path, vq, heavy).folder
    assert heavy_key != base and EncodedDataCache(tmp_path, vq, heavier).folder != heavy_key
    with torch.no_grad():
        next(vq.parameters()).view(-1)[0] += 1e-3  # one weight of the encoder changed
    assert EncodedDataCache(tmp_path, vq, data).folder != base


def test_corrupt_entry_is_a_miss(tmp_path, trained_vq):
    cache = EncodedDataCache(tmp_path, final_vq(trained_vq), DataConfig(num_samples=2))
    cache.save(torch.zeros(2, 4, dtype=torch.int16), ["a red circle", "a blue square"])
    codes, conditions = cache.load()
    assert codes.shape == (2, 4) and conditions == ["a red circle", "a blue square"]
    (cache.folder / "codes.safetensors").write_bytes(b"truncated")
    assert cache.load() is None


def test_second_run_reuses_codes_without_rendering(tmp_path, trained_vq, monkeypatch):
    import mmgen.training.tasks as tasks

    cache_dir = tmp_path / "cache"
    run(t2i_recipe(tmp_path, trained_vq[0] / "final", name="first"), cache_dir=str(cache_dir))
    (entry,) = (cache_dir / "encoded").iterdir()
    reset_accelerate()

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered although the cache holds the codes")

    monkeypatch.setattr(tasks, "load_training_images", no_rendering)
    second = t2i_recipe(tmp_path, trained_vq[0] / "final", name="second")
    run(second, cache_dir=str(cache_dir))  # another output folder, same cache
    assert (tmp_path / "second" / "final" / "model_index.json").is_file()
    assert list((cache_dir / "encoded").iterdir()) == [entry]


def test_changed_tokenizer_in_same_output_folder_encodes_again(tmp_path, trained_vq):
    cache_dir = tmp_path / "cache"
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", max_steps=1, checkpointing_steps=1)
    run(recipe, cache_dir=str(cache_dir))
    other_vq = final_vq(trained_vq)
    with torch.no_grad():
        for p in other_vq.parameters():
            p.mul_(-1.0)  # a different encoder
    save_module(other_vq, tmp_path / "other_vq")
    reset_accelerate()
    recipe = t2i_recipe(tmp_path, tmp_path / "other_vq", max_steps=1, checkpointing_steps=1)
    run(recipe, cache_dir=str(cache_dir))  # same output_dir "t2i", new tokenizer
    entries = sorted((cache_dir / "encoded").iterdir())
    assert len(entries) == 2
    first, second = (load_state_dict(entry / "codes.safetensors")["codes"] for entry in entries)
    assert not torch.equal(first, second)


def test_compiled_encoding_gives_the_eager_codes(trained_vq):
    """``training.compile``'s encoding pass: one compiled shape, the last chunk padded and its
    padding dropped; images and clips (frame by frame) alike."""
    from torch._dynamo.utils import counters

    from mmgen.training.tasks import encode_images, load_training_images

    vq = final_vq(trained_vq).eval()
    images, _ = load_training_images(DataConfig(num_samples=10), show_progress=False)  # 4+4+2
    clips = images[:6].view(3, 2, *images.shape[1:])  # (3 clips, 2 frames, C, H, W)
    layout = vq.token_layout(*images.shape[-2:])
    for data in (images, clips):  # clips' chunks of 2 x 2 frames: the images' shape again
        torch._dynamo.reset()
        counters.clear()
        eager = encode_images(vq, layout, data, cpu_accelerator(), batch_size=4)
        assert counters["stats"]["unique_graphs"] == 0
        compiled = encode_images(vq, layout, data, cpu_accelerator(), batch_size=4, compile=True)
        assert counters["stats"]["unique_graphs"] == 1  # dynamo built one graph: one shape
        assert compiled.shape == eager.shape and compiled.dtype == eager.dtype
        assert torch.equal(compiled, eager)


def test_training_compile_reaches_the_encoding(tmp_path, trained_vq, monkeypatch):
    """A task with ``training.compile`` asks for a compiled encoding on a cache miss."""
    import mmgen.training.tasks as tasks
    from mmgen.training.config import load_run_config

    encode, asked = tasks.encode_images, []

    def recording_encode(*args, compile=False, **kwargs):
        asked.append(compile)
        return encode(*args, **kwargs)  # eagerly: what is checked is the flag's route

    monkeypatch.setattr(tasks, "encode_images", recording_encode)
    for flag in (False, True):
        recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", compile=flag)
        config = load_run_config(recipe, cache_dir=str(tmp_path / f"cache-{flag}"))  # misses
        tasks.build_task(config).prepare_data(cpu_accelerator())
    assert asked == [False, True]


def cpu_accelerator():
    """What the encoding reads of an ``Accelerator``, on the CPU, without progress bars."""
    from types import SimpleNamespace

    return SimpleNamespace(
        device=torch.device("cpu"), is_local_main_process=False, is_main_process=True,
        print=lambda *args, **kwargs: None,
    )  # fmt: skip
