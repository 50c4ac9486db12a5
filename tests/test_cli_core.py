"""The engine's CLI commands, in-process, with --json and their bad inputs (exit code 2)."""

import json


def test_models(run_cli):
    code, out, _ = run_cli("models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["minilm"]["installed"] and rows["minilm"]["kind"] == "encoder"


def test_tokens(run_cli):
    code, out, _ = run_cli("tokens", "Naïve café!", "--json")
    r = json.loads(out)
    assert code == 0
    assert r["tokens"] == ["[CLS]", "naive", "cafe", "!", "[SEP]"]
    assert r["words"][1]["text"] == "Naïve" and r["special"][0]
    code, out, _ = run_cli("tokens", "Naïve café!")
    assert code == 0 and "naive" in out and "'Naïve'" in out


def test_embed_and_similarity(run_cli):
    code, out, _ = run_cli("embed", "a cat", "a dog", "--json")
    vecs = json.loads(out)["embeddings"]
    assert code == 0 and len(vecs) == 2 and len(vecs[0]) == 384
    code, out, _ = run_cli(
        "similarity", "A cat sits on the mat.", "A kitten rests on a rug.", "--json"
    )
    close = json.loads(out)["cosine"][0][1]
    code, out, _ = run_cli("similarity", "A cat sits on the mat.", "Stock prices fell.", "--json")
    far = json.loads(out)["cosine"][0][1]
    assert close > 0.5 > far


def test_softmax(run_cli):
    code, out, _ = run_cli("softmax", "3", "6", "7", "--json")
    probs = json.loads(out)["probabilities"]
    assert code == 0 and [round(p, 3) for p in probs] == [0.013, 0.265, 0.721]
    code, out, _ = run_cli("softmax", "3", "6", "7", "--temperature", "0.5", "--json")
    assert json.loads(out)["probabilities"][2] > 0.85


def test_evaluate_sts(run_cli, tmp_path):
    data = tmp_path / "sts.csv"
    lines = [
        "main\tf\t2012\t1\t5.0\tA man plays a guitar.\tA man is playing guitar.",
        "main\tf\t2012\t2\t0.0\tA man plays a guitar.\tThe senate passed the budget.",
        "main\tf\t2012\t3\t3.0\tA woman slices onions.\tA woman is cutting vegetables.",
        "main\tf\t2012\t4\t1.0\tA dog runs.\tThe sky is blue today.",
    ]
    data.write_text("\n".join(lines) + "\n")
    code, out, _ = run_cli("evaluate", "sts", str(data), "--json")
    r = json.loads(out)
    assert code == 0 and r["pairs"] == 4 and r["spearman"] > 0.7


def test_bad_inputs_exit_2_with_one_line(run_cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("only\tthree\tfields\n")
    cases = [
        (("tokens", ""), "text is empty"),
        (("tokens", "hi", "-m", "nope"), "unknown model 'nope'"),
        (("softmax", "1", "2", "--temperature", "0"), "temperature must be > 0"),
        (("evaluate", "sts", str(tmp_path / "missing.csv")), "does not exist"),
        (("evaluate", "sts", str(bad)), "bad.csv:1: 3 tab-separated fields, expected 7"),
    ]
    for args, message in cases:
        code, out, err = run_cli(*args)
        assert code == 2, args
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
