"""Temperature, top-k and top-p (nucleus) filtering against hand-computed distributions."""

import pytest
import torch

from contextlens.sampling import choose, next_token_distribution


def test_temperature_top_k_top_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    torch.testing.assert_close(
        next_token_distribution(logits), torch.tensor([0.5, 0.3, 0.15, 0.05])
    )
    k2 = next_token_distribution(logits, top_k=2)
    torch.testing.assert_close(k2, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    p = next_token_distribution(logits, top_p=0.75)  # 0.5 + 0.3 ≥ 0.75: two tokens stay
    torch.testing.assert_close(p, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    p = next_token_distribution(logits, top_p=0.1)  # the top token always stays
    torch.testing.assert_close(p, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    hot = next_token_distribution(logits, temperature=2.0)
    expected = torch.tensor([0.5, 0.3, 0.15, 0.05]) ** 0.5
    torch.testing.assert_close(hot, expected / expected.sum())


def test_choose_greedy_and_seeded():
    logits = torch.tensor([0.1, 2.0, 1.9])
    assert choose(logits, 0.0, None, None, None) == 1
    draws = {choose(logits, 1.0, None, None, torch.Generator().manual_seed(s)) for s in range(50)}
    assert draws == {0, 1, 2}
    assert {choose(logits, 1.0, 1, None, torch.Generator().manual_seed(s)) for s in range(20)} == {
        1
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_same_seed_same_draw(seed):
    logits = torch.randn(100)
    a = choose(logits, 0.8, None, 0.9, torch.Generator().manual_seed(seed))
    assert a == choose(logits, 0.8, None, 0.9, torch.Generator().manual_seed(seed))
