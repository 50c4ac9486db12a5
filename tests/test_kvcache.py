"""The KV-cache view: its formulas against the bytes our caches allocate, the named real
configurations, the CLI (tables, --json, bad input), the web route and the MLA-vs-GQA demo."""

import json

import pytest
import torch
from test_mla import save_deepseek

import contextlens as cl
from contextlens import ContextlensError
from contextlens.analysis import kvcache
from contextlens.nn.attention import KVCache, LatentCache
from contextlens.report import to_dict


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_formulas_equal_the_bytes_our_caches_allocate(dtype):
    L, H, H_kv, d, d_c, d_r, T = 3, 8, 2, 16, 32, 8, 50  # noqa: N806
    name = str(dtype).removeprefix("torch.")
    shape = kvcache.CacheShape("toy", L, H, H_kv, d, d, kvcache.BYTES[name], name, d_c, d_r)
    per_token = {v.name: v.bytes_per_token for v in kvcache.report(shape).variants}
    allocated = {
        "MHA": KVCache(L, 1, H, d, T, dtype).nbytes,
        "GQA": KVCache(L, 1, H_kv, d, T, dtype).nbytes,
        "MQA": KVCache(L, 1, 1, d, T, dtype).nbytes,
        "MLA": LatentCache(L, 1, d_c + d_r, T, dtype).nbytes,
    }
    assert {k: v // T for k, v in allocated.items()} == per_token


def test_loaded_models_report_what_their_cache_allocates(smollm2, tmp_path):
    save_deepseek("v3", tmp_path)
    for lm, variant in ((smollm2, "GQA"), (cl.load(tmp_path), "MLA")):
        r = kvcache.report(kvcache.of_model(lm), [64])
        assert r.native == variant
        row = next(v for v in r.variants if v.name == variant)
        assert row.bytes_at[64] == lm.model.new_cache(1, 64).nbytes


def test_named_configurations():
    v3 = {v.name: v for v in kvcache.report(kvcache.load_config("deepseek-v3")).variants}
    assert v3["MLA"].bytes_per_token == 70_272  # 61·(512 + 64)·2
    assert v3["MHA"].bytes_per_token == 4_997_120  # 61·128·(192 + 128)·2
    assert round(v3["MHA"].times_native) == 71
    llama = kvcache.report(kvcache.load_config("llama-3-8b"))
    assert llama.native == "GQA"
    assert [v.bytes_per_token for v in llama.variants] == [524_288, 131_072, 16_384]
    assert kvcache.report(kvcache.load_config("qwen2.5-7b", "float32")).variants[1].numbers == (
        "2·28·4·128·4"
    )


def test_cli_tables_and_json(run_cli, tmp_path):
    code, out, _ = run_cli("kv-cache", "--config", "deepseek-v3", "--json")
    assert code == 0
    assert json.loads(out) == to_dict(kvcache.report(kvcache.load_config("deepseek-v3")))
    code, out, _ = run_cli("kv-cache", "smollm2", "--context", "2048")
    assert code == 0 and "2·L·H_kv·d_h·b = 2·30·3·64·4" in out and "46,080" in out
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32})
    )
    code, out, _ = run_cli("kv-cache", "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["variants"][0]["bytes_per_token"] == 2 * 2 * 32 * 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "gpt-9"], "neither a named configuration"),
        (["smollm2", "--config", "deepseek-v3"], "not both"),
        (["--config", "deepseek-v3", "--dtype", "int3"], "pass --dtype"),
        (["--config", "deepseek-v3", "--context", "0"], "positive integers"),
    ],
)
def test_cli_bad_input_is_one_line(run_cli, args, message):
    code, out, err = run_cli("kv-cache", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_config_files(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ContextlensError, match="not a JSON config"):
        kvcache.load_config(bad)
    bad.write_text(json.dumps({"num_hidden_layers": 2, "num_attention_heads": 0}))
    with pytest.raises(ContextlensError, match="'num_attention_heads' is 0"):
        kvcache.load_config(bad)


def test_latent_demo_caches_less_and_both_paths_agree(smollm2):
    d = kvcache.latent_demo(smollm2, "The animal didn't cross the street because it was tired.")
    n = len(d.tokens)
    assert d.gqa_cache == [30, 2, 3, n, 64] and d.gqa_bytes == 30 * 2 * 3 * n * 64 * 4
    assert d.mla_bytes == 30 * n * (256 + 32) * 4 < d.gqa_bytes
    assert d.max_difference < 1e-5
    assert sum(d.naive) == pytest.approx(1, abs=1e-5)


def test_web_route(smollm2):
    from fastapi.testclient import TestClient

    from contextlens.web.app import create_app

    client = TestClient(
        create_app(["smollm2"]), base_url="http://127.0.0.1", raise_server_exceptions=False
    )
    r = client.get("/api/kv-cache", params={"model": "smollm2", "text": "The animal was tired."})
    assert r.status_code == 200
    body = r.json()
    assert [rep["shape"]["name"] for rep in body["reports"]] == ["smollm2", *kvcache.NAMED]
    assert body["demo"]["max_difference"] < 1e-5
    assert client.get("/api/kv-cache", params={"model": "nope"}).status_code == 404


def test_tour_section(capsys, smollm2):
    from contextlens.cli.kvcache import tour_kv_cache

    tour_kv_cache()
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "61·(512+64)·2 = 70,272 B/token" in out and "(71×)" in out
    assert "[30, 2, 3, 13, 64] = 599,040 B" in out  # 13 tokens · 30 layers · K and V · 3 · 64 · 4 B
    difference = float(out.split("largest difference over all heads ")[1].split()[0])
    assert difference < 1e-5
