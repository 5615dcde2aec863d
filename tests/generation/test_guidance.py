import pytest
import torch

from mmgen.generation.guidance import check_guidance_args, guidance_scale_at, mix_guidance


def test_schedules():
    assert [guidance_scale_at(g, 5, 3.0, "constant") for g in range(5)] == [3.0] * 5
    assert [guidance_scale_at(g, 5, 3.0, "linear") for g in range(5)] == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert [guidance_scale_at(g, 5, 3.0, "cutoff", 2) for g in range(5)] == [3, 3, 1, 1, 1]


def test_half_precision_logits_are_mixed_in_float32_without_overflow():
    cond = torch.tensor([[10.0, -10.0, 0.0]], dtype=torch.float16)
    mixed = mix_guidance(cond, -cond, 1000.0)  # 10 + 999 * 20 > float16's 65504
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed, torch.tensor([[19990.0, -19990.0, 0.0]]))


def test_mix_is_exactly_cond_at_scale_one_and_extrapolates():
    cond, uncond = torch.randn(4, 7), torch.randn(4, 7)
    assert torch.equal(mix_guidance(cond, uncond, 1.0), cond)
    torch.testing.assert_close(mix_guidance(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(mix_guidance(cond, uncond, 3.0), uncond + 3 * (cond - uncond))


def test_bad_guidance_args():
    with pytest.raises(ValueError, match="guidance_scale"):
        check_guidance_args(-0.5, "constant", None)
    with pytest.raises(ValueError, match=r"guidance_scale must be a number in \[0, 1000\]"):
        check_guidance_args(3.4e38, "constant", None)  # finite, but the mixed logits overflow
    check_guidance_args(1000, "constant", None)
    with pytest.raises(ValueError, match="guidance_schedule"):
        check_guidance_args(2.0, "cosine", None)
    with pytest.raises(ValueError, match="guidance_cutoff"):
        check_guidance_args(2.0, "cutoff", None)
