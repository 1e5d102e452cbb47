"""The fused projection + cross-entropy equals the plain one (loss and gradients)."""

import pytest
import torch
import torch.nn.functional as F

from polyadapt_text.loss import linear_cross_entropy


@pytest.mark.parametrize("weight_grad", [False, True])
def test_fused_loss_matches_plain_cross_entropy(weight_grad):
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 300, bias=False).double().requires_grad_(weight_grad)
    hidden = torch.randn(70, 16, dtype=torch.float64) * 3
    targets = torch.randint(0, 300, (70,))
    grads = []
    for fn in (
        lambda h: F.cross_entropy(head(h), targets, reduction="sum"),
        lambda h: linear_cross_entropy(h, head, targets),
    ):
        h = hidden.clone().requires_grad_(True)
        head.zero_grad()
        loss = fn(h)
        (0.37 * loss).backward()
        grads.append((loss.detach().double(), h.grad.clone(), head.weight.grad.clone() if weight_grad else None))
    (plain_loss, plain_dh, plain_dw), (fused_loss, fused_dh, fused_dw) = grads
    assert torch.allclose(fused_loss, plain_loss, rtol=1e-5)
    assert torch.allclose(fused_dh, plain_dh, rtol=1e-4, atol=1e-6)
    if weight_grad:
        assert torch.allclose(fused_dw, plain_dw, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(hidden, head, targets).double(), plain_loss, rtol=1e-5)


def test_fused_loss_handles_underflowing_probabilities():
    head = torch.nn.Linear(2, 5, bias=False)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0] = 1000.0
    hidden = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    loss = linear_cross_entropy(hidden, head, torch.tensor([0, 3]))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(1000.0)  # p(target 3) underflows; lse - logit is exact
    assert hidden.grad[1, 0] == pytest.approx(1000.0)
