"""Word in Context (WiC): is a word used in the same sense in two sentences?

For each pair the target word's contextual vectors in the two sentences are compared by cosine,
at every layer. At each layer a threshold ("same sense if cosine ≥ t") is chosen on one half of
the pairs (the even-numbered ones) and the accuracy is reported on the other half, so the table
shows at which layer the vectors start to carry the sense.
"""

import torch

from ..errors import ContextlensError
from ..io.benchmarks import WicPair
from .words import locate, word_vectors


def cosines(model, pairs: list[WicPair], batch_size: int = 32) -> torch.Tensor:
    """`[N, L+1]`: the cosine of the target word's two contextual vectors, per layer."""
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        items = [side for p in chunk for side in (p.first, p.second)]
        traces = model.trace([s for s, _ in items], attentions=False, truncate=True)
        vecs = torch.stack(
            [
                word_vectors(t.hidden_states.float(), locate(t, span))
                for t, (_, span) in zip(traces, items, strict=True)
            ]
        )  # [2n, L+1, d]
        out.append(torch.nn.functional.cosine_similarity(vecs[0::2], vecs[1::2], dim=-1))
    return torch.cat(out)


def best_threshold(cos: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The threshold t maximising accuracy of "same iff cos ≥ t" on `cos` `[n]`: (t, accuracy)."""
    values = cos.sort().values
    cuts = torch.cat([values[:1] - 1, (values[1:] + values[:-1]) / 2, values[-1:] + 1])
    acc = ((cos[None, :] >= cuts[:, None]) == same[None, :]).float().mean(1)  # [cuts]
    i = int(acc.argmax())
    return float(cuts[i]), float(acc[i])


def evaluate_wic(model, pairs: list[WicPair]) -> dict:
    """Per layer: threshold chosen on the even-numbered pairs, accuracy on the odd-numbered."""
    if len(pairs) < 4:
        raise ContextlensError(f"got {len(pairs)} pairs; a dev/test split needs at least 4")
    cos = cosines(model, pairs)
    same = torch.tensor([p.same for p in pairs])
    dev = torch.arange(len(pairs)) % 2 == 0
    layers = []
    for layer in range(cos.shape[1]):
        t, dev_acc = best_threshold(cos[dev, layer], same[dev])
        test_acc = float(((cos[~dev, layer] >= t) == same[~dev]).float().mean())
        layers.append({"layer": layer, "threshold": t, "dev": dev_acc, "test": test_acc})
    majority = bool(same[dev].float().mean() >= 0.5)
    best = max(layers, key=lambda r: r["dev"])
    return {
        "pairs": len(pairs),
        "dev": int(dev.sum()),
        "test": int((~dev).sum()),
        "layers": layers,
        "best_layer": best["layer"],
        "best_test": best["test"],
        "majority_test": float((same[~dev] == majority).float().mean()),
    }
