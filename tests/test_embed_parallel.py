"""`embed` runs its batches side by side on the CPU: the same vectors as one after the other."""

import pytest
import torch

from contextlens.lm import side_by_side


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_batches_side_by_side_give_the_vectors_of_one_batch_after_another(minilm, two_threads):
    texts = [f"sentence number {i} about {'rivers ' * (i % 7)}banks" for i in range(70)]
    together = minilm.embed(texts, batch_size=8)  # 9 batches on 2 threads
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    alone = minilm.embed(texts, batch_size=8)  # the same batches on this thread
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)
    torch.testing.assert_close(together[3], minilm.embed(texts[3]), atol=1e-6, rtol=0)
    assert not together.requires_grad


def test_a_failing_batch_raises_and_restores_the_thread_count(two_threads):
    seen = []

    def run(batch):
        assert torch.is_inference_mode_enabled() and torch.get_num_threads() == 1
        seen.append(batch)
        if batch == [3]:
            raise ValueError("batch 3 failed")

    with pytest.raises(ValueError, match="batch 3 failed"):
        side_by_side(run, [[0], [1], [2], [3]], torch.device("cpu"))
    assert torch.get_num_threads() == 2
    assert [3] in seen
