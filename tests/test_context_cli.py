"""The context commands in-process: attention, heads, shift, coref, evaluate coref/wic."""

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"
ANIMAL = "The animal didn't cross the street because it was too wide."
BANK = ["I sat on the bank of the river.", "I deposited cash at the bank."]


def test_attention_from_word(run_cli, tmp_path):
    pic = tmp_path / "it.png"
    code, out, _ = run_cli("attention", ANIMAL, "--from", "it", "--json", "--plot", pic)
    r = json.loads(out)
    assert code == 0 and r["source"]["text"] == "it" and len(r["layers"]) == 6
    top = r["layers"][5]["top"]
    assert len(top) == 5 and top[0]["weight"] >= top[1]["weight"]
    assert pic.stat().st_size > 5000
    code, out, _ = run_cli("attention", ANIMAL, "--from", "it", "--layer", "5", "--head", "11")
    assert code == 0 and "animal" in out and "head 11" in out


def test_attention_whole_text(run_cli, tmp_path):
    code, out, _ = run_cli("attention", ANIMAL, "--layer", "2", "--top", "2", "--json")
    r = json.loads(out)
    assert code == 0 and r["layer"] == 2
    assert [w["word"]["text"] for w in r["words"]][:3] == ["[CLS]", "The", "animal"]
    grid = tmp_path / "grid.svg"
    code, out, _ = run_cli("attention", ANIMAL, "--plot", grid, "--grid")
    assert code == 0 and "saved" in out and grid.exists()


def test_attention_bad_inputs(run_cli):
    for args, message in [
        (("--layer", "6"), "error: layer 6 is out of range; this model has layers 0..5"),
        (("--head", "12"), "error: head 12 is out of range"),
        (("--from", "zebra"), "error: 'zebra' is not a word of the text; its words are:"),
        (("--from", "the"), "error: 'the' occurs 2 times"),
        (("--from", "it", "--plot", "x.gif"), "error: cannot save x.gif"),
    ]:
        code, out, err = run_cli("attention", ANIMAL, *args)
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, (args, err)


def test_heads(run_cli):
    code, out, _ = run_cli("heads", ANIMAL, "--from", "it", "--to", "animal", "--json")
    r = json.loads(out)
    assert code == 0 and (r["source"]["text"], r["target"]["text"]) == ("it", "animal")
    weights = [h["weight"] for h in r["heads"]]
    assert len(weights) == 10 and weights == sorted(weights, reverse=True)
    assert len(r["by_layer"]) == 6
    code, out, _ = run_cli("heads", ANIMAL, "--json")
    r = json.loads(out)
    assert code == 0 and len(r["entropy"]) == 6 and len(r["sink"][0]) == 12
    assert min(min(row) for row in r["entropy"]) < 0.01  # layer 0 head 2 attends to itself
    code, _, err = run_cli("heads", ANIMAL, "--from", "it")
    assert code == 2 and "give both --from and --to" in err


def test_shift(run_cli, tmp_path):
    curves, pca = tmp_path / "c.png", tmp_path / "m.png"
    code, out, _ = run_cli("shift", "bank", *BANK, "--json", "--plot", curves, "--map", pca)
    r = json.loads(out)
    assert code == 0 and len(r["layers"]) == 7 and r["position_in_input"]
    assert r["layers"][-1]["mean_cosine"] < r["layers"][0]["mean_cosine"]
    assert curves.exists() and pca.exists()
    code, out, _ = run_cli("shift", "bank", *BANK)
    assert code == 0 and "sense groups" in out and "right context" in out
    code, _, err = run_cli("shift", "bank", BANK[0])
    assert code == 2 and "at least two" in err


def test_coref(run_cli):
    args = ("coref", ANIMAL, "--pronoun", "it", "--candidates", "animal", "street")
    code, out, _ = run_cli(*args, "--json", "--head", "5.11")
    r = json.loads(out)
    assert code == 0 and r["given"] == ["animal", "street"]
    methods = {m["method"]: m for m in r["methods"]}
    assert methods["attention, layer 5 head 11"]["winner"] in ("animal", "street")
    assert len(r["methods"]) == 6 + 4 + 1
    code, _, err = run_cli("coref", "It said it would.", "--pronoun", "it", "--candidates", "a,b")
    assert code == 2 and "occurs 2 times" in err
    code, _, err = run_cli(*args[:-1])
    assert code == 2 and "at least two --candidates" in err


def test_evaluate_coref_files(run_cli):
    code, out, _ = run_cli("evaluate", "coref", DATA / "wsc-dev.jsonl", "--limit", "41", "--json")
    r = json.loads(out)
    assert code == 0 and r["read"] == r["cases"] == 42 and r["skipped"] == {}  # 41 + its twin
    names = [m["method"] for m in r["methods"]]
    assert names[:3] == ["first candidate", "majority", "nearest candidate"]
    code, out, _ = run_cli(
        "evaluate", "coref", DATA / "winobias", "--format", "winobias", "--limit", "40"
    )
    assert code == 0 and "attention, best head" in out
    code, out, _ = run_cli(
        "evaluate", "coref", DATA / "gap-development.tsv", "--limit", "30", "--json"
    )
    r = json.loads(out)
    assert code == 0 and r["read"] == 30 and r["cases"] + sum(r["skipped"].values()) == 30


def test_evaluate_wic(run_cli):
    wic = DATA / "wic"
    code, out, _ = run_cli(
        "evaluate", "wic", wic / "dev.data.txt", wic / "dev.gold.txt", "--limit", "40"
    )
    assert code == 0 and "best layer on dev" in out
    code, _, err = run_cli("evaluate", "wic", wic / "dev.data.txt", wic / "missing.txt")
    assert code == 2 and "missing.txt does not exist; give a WiC gold file" in err


def test_tour_sections(capsys, monkeypatch, minilm, smollm2, tmp_path):
    from contextlens.cli import context

    monkeypatch.chdir(tmp_path)
    models = {"minilm": minilm, "smollm2": smollm2}
    monkeypatch.setattr(context, "get_model", models.__getitem__)
    context.tour_attention()
    out = capsys.readouterr().out
    assert "layer 5" in out and "rollout" in out and "[CLS]" in out
    context.tour_context()
    out = capsys.readouterr().out
    assert "sense groups at the last layer: [1, 1, 2, 2]" in out
    lines = [ln for ln in out.splitlines() if "smollm2  …too" in ln]
    assert len(lines) == 2 and lines[0].split("animal")[1] == lines[1].split("animal")[1]
    picture = Path(out.split("picture: ")[1].split()[0])
    assert picture == tmp_path / "contextlens-bank-shift.png" and picture.stat().st_size > 5000
