import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from mmgen.tokenizers.quantizer import VectorQuantizer
from mmgen.tokenizers.vq import VQConfig


def _quantizer(codebook_size=16, codebook_dim=4, seed=0, **kwargs) -> VectorQuantizer:
    torch.manual_seed(seed)
    return VectorQuantizer(codebook_size, codebook_dim, **kwargs)


def _z(shape=(2, 4, 3, 5), seed=1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _unit_rows(z_BCHW: torch.Tensor) -> torch.Tensor:
    return F.normalize(z_BCHW.permute(0, 2, 3, 1).reshape(-1, z_BCHW.shape[1]), dim=-1)


def test_codes_are_unit_norm_lookups_and_ids_are_argmin():
    q = _quantizer().eval()
    z = _z()
    out = q(z)
    codes_KC = F.normalize(q.embedding.weight, dim=-1)
    expected_ids = torch.cdist(_unit_rows(z), codes_KC).argmin(dim=1).view(2, 3, 5)
    assert out.ids.dtype == torch.long
    assert out.ids.shape == (2, 3, 5)
    assert torch.equal(out.ids, expected_ids)
    assert torch.equal(q.encode(z), expected_ids)
    assert out.quantized.shape == z.shape
    torch.testing.assert_close(out.quantized.norm(dim=1), torch.ones(2, 3, 5))
    torch.testing.assert_close(out.quantized, q.lookup(out.ids))
    torch.testing.assert_close(q.lookup(out.ids).norm(dim=1), torch.ones(2, 3, 5))


def test_lookup_ignores_codebook_scale():
    q = _quantizer()
    ids = torch.arange(16).view(1, 4, 4)
    before = q.lookup(ids)
    with torch.no_grad():
        q.embedding.weight.mul_(7.0)
    torch.testing.assert_close(q.lookup(ids), before)


def test_losses_are_squared_distances_between_normalised_vectors():
    q = _quantizer().eval()
    z = _z()
    out = q(z)
    z_unit = _unit_rows(z)
    e = _unit_rows(q.lookup(out.ids))
    expected = ((z_unit - e) ** 2).mean()
    torch.testing.assert_close(out.codebook_loss, expected)
    torch.testing.assert_close(out.commitment_loss, expected)
    assert out.codebook_loss > 0


def test_straight_through_gradient_reaches_input_and_losses_route_correctly():
    q = _quantizer()
    z = _z().requires_grad_()
    out = q(z)
    (out.quantized * torch.randn_like(out.quantized)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    # The straight-through output carries no gradient into the codebook.
    assert q.embedding.weight.grad is None or q.embedding.weight.grad.abs().sum() == 0

    q.zero_grad()
    z.grad = None
    q(z).codebook_loss.backward()
    assert q.embedding.weight.grad.abs().sum() > 0
    assert z.grad is None or z.grad.abs().sum() == 0

    q.zero_grad()
    z.grad = None
    q(z).commitment_loss.backward()
    assert z.grad.abs().sum() > 0
    assert q.embedding.weight.grad is None or q.embedding.weight.grad.abs().sum() == 0


def test_perplexity_counts_effective_codes_in_batch():
    q = _quantizer(codebook_size=8).eval()
    codes_8C = F.normalize(q.embedding.weight.detach(), dim=-1)
    all_codes = codes_8C.T.reshape(1, 4, 1, 8)  # each code once
    torch.testing.assert_close(q(all_codes).perplexity, torch.tensor(8.0))
    one_code = codes_8C[3].view(1, 4, 1, 1).expand(2, 4, 3, 3)
    out = q(one_code)
    assert torch.all(out.ids == 3)
    torch.testing.assert_close(out.perplexity, torch.tensor(1.0))


def test_usage_is_ema_of_assignment_share_and_updates_only_in_training():
    q = _quantizer(codebook_size=8, usage_decay=0.9)
    codes_8C = F.normalize(q.embedding.weight.detach(), dim=-1)
    z = codes_8C[[2, 2, 2, 5]].T.reshape(1, 4, 2, 2)  # 3/4 to code 2, 1/4 to code 5
    q.eval()
    q(z)
    torch.testing.assert_close(q.usage, torch.full((8,), 1 / 8))
    q.train()
    q(z)  # no generator: no restart
    share = torch.zeros(8)
    share[2], share[5] = 0.75, 0.25
    torch.testing.assert_close(q.usage, 0.9 / 8 + 0.1 * share)
    torch.testing.assert_close(q.usage.sum(), torch.tensor(1.0))


def test_unused_codes_die_and_utilisation_reports_alive_fraction():
    q = _quantizer(codebook_size=8, usage_decay=0.5, dead_code_threshold=1e-2).train()
    assert q.utilisation() == 1.0
    codes_8C = F.normalize(q.embedding.weight.detach(), dim=-1)
    z = codes_8C[[0, 1]].T.reshape(1, 4, 1, 2)
    for _ in range(10):
        q(z)
    assert q.utilisation() == pytest.approx(2 / 8)
    with torch.no_grad():
        q.usage.copy_(torch.tensor([0.5, 0.0, 0.2, 0.0, 0.009, 0.3, 0.011, 0.0]))
    assert q.utilisation() == pytest.approx(4 / 8)


def _dead_setup():
    q = _quantizer(codebook_size=16, codebook_dim=4).train()
    dead = torch.tensor([1, 4, 9])
    with torch.no_grad():
        q.usage[dead] = 0.0
    return q, dead


def test_dead_codes_are_restarted_on_batch_vectors():
    q, dead = _dead_setup()
    alive = torch.ones(16, dtype=torch.bool)
    alive[dead] = False
    before = q.embedding.weight.detach().clone()
    z = _z((2, 4, 4, 4))
    q(z, generator=torch.Generator().manual_seed(0))
    after = q.embedding.weight.detach()
    assert torch.equal(after[alive], before[alive])
    assert not torch.isclose(after[dead], before[dead]).all(dim=1).any()
    # Each restarted code sits (up to the tiny noise) on one of the batch's encoder vectors.
    cosine = F.normalize(after[dead], dim=-1) @ _unit_rows(z).T
    assert torch.all(cosine.max(dim=1).values > 1 - 1e-4)
    # ... on distinct ones, and the usage was reset so they are alive again.
    assert len(set(cosine.argmax(dim=1).tolist())) == len(dead)
    assert torch.all(q.usage[dead] >= q.dead_code_threshold)
    assert q.utilisation() == 1.0


def test_restarts_are_reproducible_with_the_same_seed_and_leave_global_rng_alone():
    q_a, _ = _dead_setup()
    q_b, q_c = copy.deepcopy(q_a), copy.deepcopy(q_a)
    z = _z((2, 4, 4, 4))
    rng_state = torch.random.get_rng_state()
    q_a(z, generator=torch.Generator().manual_seed(123))
    q_b(z, generator=torch.Generator().manual_seed(123))
    q_c(z, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert torch.equal(q_a.embedding.weight, q_b.embedding.weight)
    assert torch.equal(q_a.usage, q_b.usage)
    assert not torch.equal(q_a.embedding.weight, q_c.embedding.weight)


def test_restarts_work_when_more_codes_are_dead_than_batch_vectors():
    q = _quantizer(codebook_size=16).train()
    with torch.no_grad():
        q.usage.zero_()
    z = _z((1, 4, 2, 2))
    q(z, generator=torch.Generator().manual_seed(0))
    cosine = F.normalize(q.embedding.weight.detach(), dim=-1) @ _unit_rows(z).T
    assert torch.all(cosine.max(dim=1).values > 1 - 1e-4)


def test_no_restart_without_generator_or_in_eval_mode():
    q, _ = _dead_setup()
    before = q.embedding.weight.detach().clone()
    z = _z((2, 4, 4, 4))
    q(z)
    assert torch.equal(q.embedding.weight, before)
    q.eval()
    q(z, generator=torch.Generator().manual_seed(0))
    assert torch.equal(q.embedding.weight, before)


def test_restart_then_backward_does_not_break_autograd():
    q, _ = _dead_setup()
    z = _z((2, 4, 4, 4)).requires_grad_()
    out = q(z, generator=torch.Generator().manual_seed(0))
    (out.quantized.sum() + out.codebook_loss + out.commitment_loss).backward()
    assert z.grad is not None and q.embedding.weight.grad is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(codebook_size=0, codebook_dim=4),
        dict(codebook_size=8, codebook_dim=1),
        dict(codebook_size=8, codebook_dim=4, usage_decay=1.0),
        dict(codebook_size=8, codebook_dim=4, dead_code_threshold=0.2),
        dict(codebook_size=8, codebook_dim=4, dead_code_threshold=-1.0),
    ],
)
def test_rejects_nonsense_arguments(kwargs):
    with pytest.raises(ValueError):
        VectorQuantizer(**kwargs)


def test_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="expected"):
        _quantizer(codebook_dim=4)(torch.randn(1, 3, 2, 2))


_DDP_WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from mmgen.tokenizers.quantizer import VectorQuantizer
    rank, store = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
    torch.manual_seed(0)
    q = VectorQuantizer(16, 4).train()
    with torch.no_grad():
        q.usage[[1, 4, 9]] = 0.0
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(100 + rank))
    q(z, generator=torch.Generator().manual_seed(rank))
    state = torch.cat([q.embedding.weight.detach().flatten(), q.usage])
    gathered = [torch.zeros_like(state) for _ in range(2)]
    dist.all_gather(gathered, state)
    assert torch.equal(gathered[0], gathered[1]), "ranks diverged"
    dist.destroy_process_group()
    print("ok")
    """
)


def test_distributed_ranks_keep_identical_codebook_and_usage(tmp_path):
    store = str(tmp_path / "store")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DDP_WORKER, str(rank), store],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for p, text in zip(procs, outputs, strict=True):
        assert p.returncode == 0, text
        assert "ok" in text


@pytest.mark.parametrize("codebook_size", [16, 1000, 16384])  # 16384: LlamaGen's codebook
def test_default_dead_code_threshold_is_valid_for_every_codebook_size(codebook_size):
    q = VectorQuantizer(codebook_size, 8)
    assert q.dead_code_threshold == 0.5 / codebook_size
    assert VQConfig(codebook_size=codebook_size).dead_code_threshold == q.dead_code_threshold
