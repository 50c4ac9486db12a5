"""One decode step of attention (one new token against a filled cache) per variant, at equal
d_model and context length: MHA, GQA, MQA (nn.Attention) and MLA (nn.LatentAttention, naive and
weight-absorbed), with each variant's cache bytes; MLA also against transformers'
DeepseekV3Attention (eager, the same weights) in the same run, and the machine's fp32 matmul
ceiling.

    .venv/bin/python bench/bench_attention.py [--context 4096] [--threads 1]

Prints a markdown section for bench/RESULTS.md.
"""

import argparse
import os

import torch
from common import machine, matmul_ceiling, timeit

from contextlens.nn import Attention, KVCache, Pass, RMSNorm, RoPE
from contextlens.nn.attention import Latent, LatentAttention, LatentCache

D_MODEL, HEADS, HEAD_DIM = 2048, 16, 128
LATENT = Latent(kv_rank=512, rope_dim=64, nope_dim=128, v_dim=128, q_rank=1536, interleaved=True)


def dense(n_kv: int, context: int):
    """(module, cache) for attention with n_kv key/value heads."""
    attn = Attention(D_MODEL, HEADS, n_kv, False, RoPE(HEAD_DIM, 10000.0, context)).eval()
    return attn, KVCache(1, 1, n_kv, HEAD_DIM, context)


def latent(context: int, absorbed: bool):
    attn = LatentAttention(
        D_MODEL,
        HEADS,
        LATENT,
        LATENT.rope(10000.0, context),
        RMSNorm(LATENT.q_rank, 1e-6),
        RMSNorm(LATENT.kv_rank, 1e-6),
        LATENT.scale,
    ).eval()
    for p in attn.parameters():
        if p.ndim == 2:
            torch.nn.init.normal_(p, std=D_MODEL**-0.5)
    attn.absorbed = absorbed
    return attn, LatentCache(1, 1, LATENT.kv_rank + LATENT.rope_dim, context)


def step(attn, cache, context: int):
    """One token at position context - 1 against the cache (refilled to context - 1 each time)."""
    x = torch.randn(1, 1, D_MODEL)
    positions = torch.tensor([context - 1])

    def run():
        cache.length = context - 1
        with torch.inference_mode():
            attn(x, Pass(positions, None, cache))

    return run


def transformers_step(ours: LatentAttention, context: int):
    """transformers' DeepseekV3Attention with our module's weights, its cache filled likewise."""
    from transformers import DeepseekV3Config, DynamicCache
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
        DeepseekV3Attention,
        DeepseekV3RotaryEmbedding,
    )

    cfg = DeepseekV3Config(
        hidden_size=D_MODEL,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        q_lora_rank=LATENT.q_rank,
        kv_lora_rank=LATENT.kv_rank,
        qk_rope_head_dim=LATENT.rope_dim,
        qk_nope_head_dim=LATENT.nope_dim,
        v_head_dim=LATENT.v_dim,
        max_position_embeddings=context,
        num_hidden_layers=1,
    )
    cfg._attn_implementation = "eager"
    theirs = DeepseekV3Attention(cfg, 0).eval()
    names = {
        "q_a_proj": ours.q_a,
        "q_a_layernorm": ours.q_norm,
        "q_b_proj": ours.q_b,
        "kv_a_proj_with_mqa": ours.kv_a,
        "kv_a_layernorm": ours.kv_norm,
        "kv_b_proj": ours.kv_b,
        "o_proj": ours.out,
    }
    with torch.no_grad():
        for name, module in names.items():
            getattr(theirs, name).weight.copy_(module.weight)
    rotary = DeepseekV3RotaryEmbedding(cfg)
    cache = DynamicCache(config=cfg)
    width = LATENT.kv_rank
    cache.update(torch.randn(1, 1, context - 1, width), torch.randn(1, 1, context - 1, 64), 0)
    x = torch.randn(1, 1, D_MODEL)
    position = torch.tensor([[context - 1]])
    cos_sin = rotary(x, position)

    def run():
        with torch.inference_mode():
            theirs(x, cos_sin, None, past_key_values=cache)
        cache.crop(-1)  # back to context - 1 tokens

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.context
    load_before = os.getloadavg()
    ceiling = matmul_ceiling()["torch_gflops"]
    rows = []
    for name, n_kv in (("MHA", HEADS), ("GQA (4 KV heads)", 4), ("MQA", 1)):
        attn, cache = dense(n_kv, n)
        rows.append((name, timeit(step(attn, cache, n), repeat=20, warmup=3), cache.nbytes / n))
    mla_absorbed, cache = latent(n, absorbed=True)
    rows.append(("MLA absorbed", timeit(step(mla_absorbed, cache, n), 20, 3), cache.nbytes / n))
    mla_naive, cache = latent(n, absorbed=False)
    mla_naive.load_state_dict(mla_absorbed.state_dict())
    rows.append(("MLA naive", timeit(step(mla_naive, cache, n), 20, 3), cache.nbytes / n))
    theirs = timeit(transformers_step(mla_absorbed, n), 20, 3)
    load_after = os.getloadavg()
    lines = [
        f"One decode step (1 token, batch 1) against a cache of {n - 1} tokens, one layer, "
        f"d_model={D_MODEL}, {HEADS} query heads of {HEAD_DIM}; MLA with DeepSeek-V3's widths "
        f"(d_c={LATENT.kv_rank}, d_r={LATENT.rope_dim}, q_rank={LATENT.q_rank}). fp32, "
        f"{args.threads} thread(s). Median of 20.",
        "",
        "| variant | step (ms) | cache bytes / token / layer (fp32) | × MLA absorbed time |",
        "|---|---:|---:|---:|",
    ]
    base = rows[3][1]
    for name, t, per_token in rows:
        lines.append(f"| {name} | {t * 1e3:.2f} | {per_token:,.0f} | {t / base:.2f} |")
    lines.append(
        f"| transformers DeepseekV3Attention (eager, decompresses) | {theirs * 1e3:.2f} | "
        f"{(LATENT.kv_rank + LATENT.rope_dim) * 4:,} | {theirs / base:.2f} |"
    )
    lines += [
        "",
        f"Ours / transformers for MLA: absorbed {base / theirs:.2f}, naive "
        f"{rows[4][1] / theirs:.2f}. fp32 matmul ceiling in the same run: {ceiling:.0f} "
        f"GFLOP/s ({machine()}). Load average "
        f"before/after: {load_before[0]:.1f} / {load_after[0]:.1f} (a shared, busy machine: "
        "compare the ratios, not the absolute times).",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
