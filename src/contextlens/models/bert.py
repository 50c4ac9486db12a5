"""BERT (Devlin et al. 2019): learned positions + token types, embedding LayerNorm, post-norm
blocks, exact GELU, bidirectional attention. all-MiniLM-L6-v2 is a 6-layer BERT."""

from .transformer import TransformerConfig, hf_activation


def config(hf: dict) -> TransformerConfig:
    return TransformerConfig(
        architecture="bert",
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        n_kv_heads=hf["num_attention_heads"],
        d_ff=hf["intermediate_size"],
        max_positions=hf["max_position_embeddings"],
        position="learned",
        norm="layernorm",
        norm_eps=hf.get("layer_norm_eps", 1e-12),
        pre_norm=False,
        activation=hf_activation(hf.get("hidden_act", "gelu")),
        gated_mlp=False,
        causal=False,
        type_vocab_size=hf.get("type_vocab_size", 2),
        embedding_norm=True,
    )


PREFIXES = ("bert.",)

# our name -> Hugging Face name(s); several names are concatenated along dim 0 (fused Q/K/V).
WEIGHTS = {
    "tok.weight": "embeddings.word_embeddings.weight",
    "pos.weight": "embeddings.position_embeddings.weight",
    "types.weight": "embeddings.token_type_embeddings.weight",
    "emb_norm.{p}": "embeddings.LayerNorm.{p}",
}
LAYER_WEIGHTS = {
    "attn.qkv.{p}": [f"attention.self.{n}.{{p}}" for n in ("query", "key", "value")],
    "attn.out.{p}": "attention.output.dense.{p}",
    "norm1.{p}": "attention.output.LayerNorm.{p}",
    "mlp.up.{p}": "intermediate.dense.{p}",
    "mlp.down.{p}": "output.dense.{p}",
    "norm2.{p}": "output.LayerNorm.{p}",
}
LAYER_PREFIX = "encoder.layer.{i}."
