"""BERT (Devlin et al. 2019): learned positions + token types, embedding LayerNorm, post-norm
blocks, exact GELU, bidirectional attention. all-MiniLM-L6-v2 is a 6-layer BERT."""

from .transformer import TransformerConfig, from_hf, hf_activation

KEYS = {  # TransformerConfig field -> config.json key
    "vocab_size": "vocab_size",
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_attention_heads",
    "d_ff": "intermediate_size",
    "max_positions": "max_position_embeddings",
    "norm_eps": "layer_norm_eps",
    "type_vocab_size": "type_vocab_size",
}
DEFAULTS = {"layer_norm_eps": 1e-12, "type_vocab_size": 2}  # config.json key -> value if absent


# the original Transformer's choices, which BERT and GPT-2 keep: learned positions, LayerNorm and
# a plain (not gated) MLP
LEARNED = {"position": "learned", "norm": "layernorm", "gated_mlp": False}
BERT = LEARNED | {"pre_norm": False, "causal": False, "embedding_norm": True}  # post-norm encoder


def config(hf: dict) -> TransformerConfig:
    activation = hf_activation(hf.get("hidden_act", "gelu"))
    return TransformerConfig(
        architecture="bert", activation=activation, **from_hf(hf, KEYS, DEFAULTS) | BERT
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

# checkpoint tensors a BERT file may hold that contextlens does not use (shell patterns)
UNUSED = (
    "embeddings.position_ids",  # a buffer: 0, 1, 2, … (positions are computed)
    "pooler.dense.*",  # the [CLS] pooler of pre-training; sentence embeddings pool the states
    "cls.predictions.*",  # the masked-word head of pre-training
    "cls.seq_relationship.*",  # the next-sentence head of pre-training
)
