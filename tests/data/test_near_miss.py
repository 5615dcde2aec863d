"""Near misses are images that must not match their prompt, and keep the plain set's prompts."""

import torch

from mmgen.data.near_miss import near_miss_image, near_miss_prompt, near_miss_scene
from mmgen.data.shapes import ShapesDataset, render, sample_prompt
from mmgen.eval.shapes_verifier import verify


def test_scene_changes_never_pass_the_prompt_and_pass_their_own_scene():
    g = torch.Generator().manual_seed(0)
    families = set()
    for _ in range(300):
        prompt = sample_prompt(g)
        scene = near_miss_scene(prompt, g)
        image = render(scene, g)
        assert not verify(image, prompt.text).passed, (prompt.text, scene.text)
        assert verify(image, scene.text).passed, scene.text
        families.add(prompt.family)
    assert families == {"single", "pair", "count", "relation"}


def test_near_miss_set_keeps_the_plain_sets_prompts_with_other_images():
    plain = ShapesDataset(6, seed=3)
    near = ShapesDataset(6, seed=3, near_miss=True)
    for i in range(6):
        assert near[i]["prompt"] == plain[i]["prompt"]
        assert not torch.equal(near[i]["image"], plain[i]["image"])
        assert torch.equal(near[i]["image"], ShapesDataset(6, seed=3, near_miss=True)[i]["image"])


def test_near_miss_images_are_drawn_from_the_generator_only():
    prompt = sample_prompt(torch.Generator().manual_seed(4))
    a = near_miss_image(prompt, torch.Generator().manual_seed(9))
    b = near_miss_image(prompt, torch.Generator().manual_seed(9))
    assert a.tobytes() == b.tobytes()


def test_near_miss_prompts_never_pass_the_scene_and_state_relations_wrongly_half_the_time():
    g = torch.Generator().manual_seed(1)
    wrong_relations = relations = 0
    for _ in range(300):
        prompt = sample_prompt(g)
        image = render(prompt, g)
        miss = near_miss_prompt(prompt, g)
        assert verify(image, prompt.text).passed
        assert not verify(image, miss.text).passed, (prompt.text, miss.text)
        if prompt.family == "relation":
            relations += 1
            wrong_relations += set(miss.objects) == set(prompt.objects)
    assert 0.35 < wrong_relations / relations < 0.75  # half, plus a near-miss scene's sixth
