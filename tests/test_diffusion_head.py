"""Per-token diffusion head (issue 16, eqs. 17-19): shapes, zero init, and a learning check that can fail."""

import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from tokcom.modeling.diffusion_head import DiffusionHead, diffusion_loss, sample_tokens

torch.set_num_threads(1)

CENTRES = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])  # 4 clusters, 2 apart
CLUSTER_STD = 0.1


def train_scheduler():
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")


def dpm_solver(train_sched):
    # "leading" spacing: the default "linspace" starts at r = 999 where omega_r ~ 2e-9 (see sample_tokens).
    return DPMSolverMultistepScheduler.from_config(train_sched.config, timestep_spacing="leading")


def toy_batch(n, generator):
    """Condition c in {0..3} (one-hot) selects a 2-D Gaussian cluster: tokens (n, 2), conditions (n, 4), c (n,)."""
    c = torch.randint(0, 4, (n,), generator=generator)
    tokens = CENTRES[c] + CLUSTER_STD * torch.randn(n, 2, generator=generator)
    return tokens, F.one_hot(c, 4).float(), c


@pytest.fixture(scope="module")
def trained():
    """A tiny head trained 300 steps on the 4-cluster toy problem; returns (head, scheduler, losses, seconds)."""
    torch.manual_seed(0)
    head = DiffusionHead(token_dim=2, condition_dim=4, hidden_dim=64, num_layers=2)
    sched = train_scheduler()
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses, start = [], time.perf_counter()
    for _ in range(300):
        tokens, conditions, _ = toy_batch(128, generator)
        loss = diffusion_loss(head, sched, tokens, conditions, num_noise_draws=4, generator=generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return head.eval(), sched, losses, time.perf_counter() - start


def test_shapes():
    head = DiffusionHead(token_dim=3, condition_dim=8, hidden_dim=16, num_layers=2)
    assert head(torch.randn(5, 3), torch.randint(0, 1000, (5,)), torch.randn(5, 8)).shape == (5, 3)
    assert head(torch.randn(5, 3), torch.tensor(7), torch.randn(5, 8)).shape == (5, 3)  # scalar step broadcasts
    loss = diffusion_loss(head, train_scheduler(), torch.randn(2, 6, 3), torch.randn(2, 6, 8))
    assert loss.dim() == 0
    sched = dpm_solver(train_scheduler())
    assert sample_tokens(head, sched, torch.randn(4, 8), num_inference_steps=3).shape == (4, 3)
    assert sample_tokens(head, sched, torch.randn(2, 5, 8), num_inference_steps=3).shape == (2, 5, 3)


def test_zero_init_outputs_zero_and_last_layer_gets_gradient():
    head = DiffusionHead(token_dim=4, condition_dim=8, hidden_dim=32, num_layers=3)
    for block in head.blocks:
        assert torch.count_nonzero(block.ada_ln[-1].weight) == 0  # adaLN shift/scale/gate start at zero
    out = head(torch.randn(10, 4), torch.randint(0, 1000, (10,)), torch.randn(10, 8))
    assert torch.equal(out, torch.zeros_like(out))
    loss = diffusion_loss(head, train_scheduler(), torch.randn(10, 4), torch.randn(10, 8))
    assert torch.isfinite(loss) and loss.item() > 0.5  # predicting 0 for unit noise: loss ~ 1
    loss.backward()
    assert head.final_proj.weight.grad.abs().sum() > 0
    assert head.final_proj.bias.grad.abs().sum() > 0


def test_loss_finite_and_decreases(trained):
    _, _, losses, seconds = trained
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.3 * first, (first, last)
    assert seconds < 30


@pytest.mark.parametrize("steps", [10, 20])
def test_samples_land_in_their_condition_cluster(trained, steps):
    head, sched, _, _ = trained
    c = torch.arange(4).repeat(100)
    samples = sample_tokens(head, dpm_solver(sched), F.one_hot(c, 4).float(), num_inference_steps=steps,
                            generator=torch.Generator().manual_seed(1))
    nearest = torch.cdist(samples, CENTRES).argmin(dim=1)
    accuracy = (nearest == c).float().mean().item()
    assert accuracy >= 0.9, accuracy  # a head ignoring its condition scores ~0.25
    for k in range(4):  # each cluster centred right, and neither collapsed nor blown up
        members = samples[c == k]
        assert (members.mean(0) - CENTRES[k]).norm() < 0.15
        assert 0.02 < (members - CENTRES[k]).norm(dim=1).median() < 0.3


def test_ddim_sampler_also_works(trained):
    head, sched, _, _ = trained
    c = torch.arange(4).repeat(50)
    samples = sample_tokens(head, DDIMScheduler.from_config(sched.config), F.one_hot(c, 4).float(),
                            num_inference_steps=10, generator=torch.Generator().manual_seed(2))
    assert (torch.cdist(samples, CENTRES).argmin(dim=1) == c).float().mean() >= 0.9


def test_seeded_sampling_is_reproducible():
    torch.manual_seed(0)
    head = DiffusionHead(token_dim=2, condition_dim=4, hidden_dim=16, num_layers=1)
    torch.nn.init.normal_(head.final_proj.weight, std=0.1)  # make the output depend on the input
    sched, conditions = dpm_solver(train_scheduler()), torch.randn(6, 4)

    def draw(seed):
        return sample_tokens(head, sched, conditions, num_inference_steps=5, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    tokens, conds = torch.randn(6, 2), torch.randn(6, 4)
    assert torch.equal(diffusion_loss(head, sched_t := train_scheduler(), tokens, conds, generator=g1),
                       diffusion_loss(head, sched_t, tokens, conds, generator=g2))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda h, s: h(torch.randn(5, 2), torch.zeros(5, dtype=torch.long), torch.randn(4, 4)), "conditions"),
        (lambda h, s: h(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(5, 4)), "noisy_tokens"),
        (lambda h, s: h(torch.randn(5, 2), torch.zeros(4, dtype=torch.long), torch.randn(5, 4)), "timesteps"),
        (lambda h, s: diffusion_loss(h, s, torch.randn(5, 2), torch.randn(4, 4)), "tokens"),
        (lambda h, s: diffusion_loss(h, s, torch.randn(5, 3), torch.randn(5, 4)), "tokens"),
        (lambda h, s: diffusion_loss(h, s, torch.randn(5, 2), torch.randn(5, 5)), "conditions"),
        (lambda h, s: diffusion_loss(h, s, torch.randn(2), torch.randn(4)), "conditions"),
        (lambda h, s: diffusion_loss(h, s, torch.randn(5, 2), torch.randn(5, 4), num_noise_draws=0),
         "num_noise_draws"),
        (lambda h, s: sample_tokens(h, dpm_solver(s), torch.randn(5, 4), num_inference_steps=0), "num_inference_steps"),
        (lambda h, s: sample_tokens(h, dpm_solver(s), torch.randn(5, 3)), "conditions"),
        (lambda h, s: DiffusionHead(token_dim=0, condition_dim=4), "token_dim"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    head = DiffusionHead(token_dim=2, condition_dim=4, hidden_dim=8, num_layers=1)
    with pytest.raises(ValueError, match=f"`{name}`"):
        call(head, train_scheduler())


def test_module_runs_without_importing_diffusers():
    code = (
        "import sys, torch\n"
        "import tokcom.modeling.diffusion_head as m\n"
        "h = m.DiffusionHead(2, 4, hidden_dim=8, num_layers=1)\n"
        "h(torch.randn(3, 2), torch.tensor([1, 2, 3]), torch.randn(3, 4))\n"
        "assert 'diffusers' not in sys.modules, 'diffusers imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
