import numpy as np
import pytest
import torch

from edgemem.models.lmu import LMUMemory, discretize_zoh, legendre_delay


def test_legendre_matrices_match_the_delay_system_definition():
    a, b = legendre_delay(4, theta=2.0)
    # A[i, j] = (2i+1)/theta * (-1 if i < j else (-1)^(i-j+1)); B[i] = (2i+1)/theta * (-1)^i
    assert a[0, 0] == pytest.approx(-0.5) and a[0, 1] == pytest.approx(-0.5) and a[1, 0] == pytest.approx(1.5)
    assert a[2, 1] == pytest.approx(2.5) and a[3, 0] == pytest.approx(3.5)
    np.testing.assert_allclose(b[:, 0], [0.5, -1.5, 2.5, -3.5])


def test_zoh_matches_matrix_exponential():
    from scipy.linalg import expm

    a, b = legendre_delay(6, theta=10.0)
    abar, bbar = discretize_zoh(a, b)
    np.testing.assert_allclose(abar, expm(a), atol=1e-12)
    np.testing.assert_allclose(bbar, np.linalg.solve(a, (expm(a) - np.eye(6)) @ b[:, 0]), atol=1e-10)


def test_memory_reconstructs_a_delayed_input():
    """The point of the LMU: m(t) holds the last theta steps; the Legendre readout of m gives u(t - theta)."""
    order, theta, steps = 12, 40.0, 400
    mem = LMUMemory(1, order, theta)
    t = torch.arange(steps, dtype=torch.float32)
    u = torch.sin(2 * torch.pi * t / 97.0).view(1, steps, 1)
    m = mem.recurrent(u)[0, :, 0]  # [T][d]
    readout = torch.ones(order)  # shifted Legendre polynomials at r = theta'/theta = 1 are all 1
    delayed = m @ readout
    err = (delayed[100:] - u[0, 100 - int(theta) : steps - int(theta), 0]).abs().max()
    assert err < 0.05


@pytest.mark.parametrize("steps", [100, 784])
def test_parallel_and_recurrent_modes_agree(steps):
    torch.manual_seed(0)
    mem = LMUMemory(channels=3, order=16, theta=float(steps))
    u = torch.randn(4, steps, 3)
    rec, par = mem.recurrent(u), mem.parallel(u)
    assert rec.shape == par.shape == (4, steps, 3, 16)
    assert (rec - par).abs().max() < 1e-5


def test_parallel_mode_backpropagates_like_recurrent():
    torch.manual_seed(1)
    mem = LMUMemory(2, 8, 50.0)
    u1 = torch.randn(2, 100, 2, requires_grad=True)
    u2 = u1.detach().clone().requires_grad_(True)
    mem.recurrent(u1).square().sum().backward()
    mem.parallel(u2).square().sum().backward()
    assert (u1.grad - u2.grad).abs().max() < 1e-3 * u1.grad.abs().max()
