"""Coreference probe and evaluation, WiC, and pictures — on real data and the real minilm."""

import json
from pathlib import Path

import matplotlib.image
import pytest
import torch

import contextlens as cl
from contextlens.analysis import attention as att
from contextlens.analysis import coref, plots, wic
from contextlens.analysis.words import words
from contextlens.io.benchmarks import read_cases, read_wic, read_winobias

DATA = Path(__file__).parent / "data"
ANIMAL = "The animal didn't cross the street because it was too wide."


# ── readers ─────────────────────────────────────────────────────────────────────────────────
def test_read_wsc():
    cases = read_cases(DATA / "wsc-dev.jsonl")
    assert len(cases) == 142
    c = cases[0]
    assert c.candidates == ("The city councilmen", "The demonstrators") and c.answer == 0
    assert c.text[slice(*c.pronoun_span)] == "they"
    assert cases[1].answer == 1 and cases[0].group == cases[1].group  # twins


def test_read_winobias():
    cases = read_cases(DATA / "winobias", "winobias")
    assert len(cases) == 4 * 396
    first, second = cases[0], cases[1]  # "[The developer] argued with the designer because [he]…"
    assert first.text.startswith("The developer argued with the designer because")
    assert first.candidates == ("The developer", "the designer") and first.answer == 0
    assert second.answer == 1 and first.group == second.group
    for c in cases:
        assert c.text[slice(*c.pronoun_span)].lower() in {"he", "she", "him", "her", "his"}
        for name, span in zip(c.candidates, c.candidate_spans, strict=True):
            assert c.text[slice(*span)].lower() == name.lower()


def test_read_gap():
    cases = read_cases(DATA / "gap-development.tsv")
    assert len(cases) == 2000
    c = cases[0]
    assert (c.pronoun, c.candidates, c.answer) == ("her", ("Cheryl Cassidy", "Pauline"), 0)
    assert c.text[slice(*c.candidate_spans[1])] == "Pauline"
    neither = sum(c.answer is None for c in cases)
    lines = (DATA / "gap-development.tsv").read_text().splitlines()[1:]
    assert neither == sum(ln.split("\t")[6] == ln.split("\t")[9] == "FALSE" for ln in lines)


def test_reader_bad_inputs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "It is.", "pronoun": "it", "candidates": ["a", "b"], "answer": "c"}\n')
    with pytest.raises(cl.ContextlensError, match=r"bad.jsonl:1: answer 'c' is not one of"):
        read_cases(bad)
    bad.write_text("not json\n")
    with pytest.raises(cl.ContextlensError, match="bad.jsonl:1: expected a JSON object"):
        read_cases(bad)
    with pytest.raises(cl.ContextlensError, match="cannot tell the format"):
        read_cases(tmp_path / "data.xyz")
    with pytest.raises(cl.ContextlensError, match="does not exist"):
        read_cases(tmp_path / "missing.jsonl")
    with pytest.raises(cl.ContextlensError, match="WinoBias format"):
        read_winobias(bad)
    bad.write_text("\n")
    with pytest.raises(cl.ContextlensError, match="holds no cases"):
        read_cases(bad)


# ── scoring and evaluation ──────────────────────────────────────────────────────────────────
def test_probe_scores(minilm):
    case = coref.CorefCase(ANIMAL, "it", ("the animal", "street"))
    s = coref.probe(minilm, case)
    assert [w.text for w in s.candidates] == ["animal", "street"]  # heads of the phrases
    a = att.attends_to(minilm.trace(ANIMAL), "it")
    idx = [w.text for w in a.words]
    expect = a.weights[:, :, [idx.index("animal"), idx.index("street")]]
    torch.testing.assert_close(s.attention, expect)
    assert s.similarity.shape == (7, 2) and s.distance.tolist() == [8.0, 2.0]
    with pytest.raises(cl.ContextlensError, match="candidate 'zebra' is not in the text"):
        coref.probe(minilm, coref.CorefCase(ANIMAL, "it", ("animal", "zebra")))


def test_credit_counts_ties_fairly():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.2], [0.1, 0.7]])
    assert coref.credit(scores, torch.tensor([0, 0, 0])).tolist() == [1.0, 0.5, 0.0]


def test_split_keeps_twins_together():
    cases = read_cases(DATA / "wsc-dev.jsonl")
    dev = coref.split(cases)
    groups: dict[str, set] = {}
    for c, d in zip(cases, dev.tolist(), strict=True):
        groups.setdefault(c.group, set()).add(d)
    assert all(len(v) == 1 for v in groups.values())
    assert 0.4 < dev.float().mean() < 0.6


def test_evaluate_wsc(minilm):
    cases = read_cases(DATA / "wsc-dev.jsonl")
    kept, f, skipped = coref.features(minilm, cases, batch_size=16)
    assert kept == cases and not skipped  # file order kept (traced shortest first)
    r = coref.evaluate(f, coref.split(kept))
    methods = {m["method"]: m for m in r["methods"]}
    first = methods["first candidate"]
    answers = torch.tensor([c.answer for c in kept])
    test = ~coref.split(kept)
    assert first["test"] == pytest.approx((answers[test] == 0).float().mean().item())
    best = methods["attention, best head"]
    layer, head = (int(x) for x in best["choice"].split()[1::2])
    by_head = torch.tensor(r["test_by_head"])
    assert best["test"] == pytest.approx(by_head[layer, head].item())
    assert r["dev"] + r["test"] == 142


def test_limit_keeps_groups(minilm):
    cases = read_cases(DATA / "wsc-dev.jsonl")
    assert len(coref.limit_cases(cases, 3)) == 4  # the third case's twin comes along
    with pytest.raises(cl.ContextlensError, match="--limit must be ≥ 1"):
        coref.limit_cases(cases, 0)


# ── WiC ─────────────────────────────────────────────────────────────────────────────────────
def test_read_wic_and_threshold():
    pairs = read_wic(DATA / "wic/dev.data.txt", DATA / "wic/dev.gold.txt")
    assert len(pairs) == 638
    p = pairs[0]  # board N 2-2 "Room and board ." / "He nailed boards across the windows ."
    assert p.first[0][slice(*p.first[1])] == "board"
    assert p.second[0][slice(*p.second[1])] == "boards" and p.same is False
    t, acc = wic.best_threshold(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    assert acc == 1.0 and 0.2 < t < 0.8


def test_evaluate_wic(minilm):
    pairs = read_wic(DATA / "wic/dev.data.txt", DATA / "wic/dev.gold.txt")[:80]
    r = wic.evaluate_wic(minilm, pairs)
    assert [x["layer"] for x in r["layers"]] == list(range(7))
    assert (r["dev"], r["test"]) == (40, 40)
    assert all(0 <= x["test"] <= 1 for x in r["layers"])


def test_wic_bad_inputs(tmp_path):
    data, gold = tmp_path / "d.txt", tmp_path / "g.txt"
    data.write_text("bank\tN\t1-9\tThe bank .\tA bank .\n")
    gold.write_text("T\nF\n")
    with pytest.raises(cl.ContextlensError, match="1 pairs but .* 2 labels"):
        read_wic(data, gold)
    gold.write_text("T\n")
    with pytest.raises(cl.ContextlensError, match="token index 9 is outside"):
        read_wic(data, gold)


# ── pictures ────────────────────────────────────────────────────────────────────────────────
def non_blank_png(path: Path, min_bytes: int = 5000) -> None:
    assert path.stat().st_size > min_bytes
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # not a single colour


def test_every_picture_kind(minilm, tmp_path):
    t = minilm.trace(ANIMAL)
    units = words(t)
    labels = [u.text for u in units]
    wa = att.word_attention(t.attentions, units)
    a = att.attends_to(t, "it")
    drawn = [
        plots.heatmap(wa[5].mean(0), labels, labels, "heatmap", tmp_path / "heat.png"),
        plots.grid(wa, labels, "grid", tmp_path / "grid.png"),
        plots.lines(labels, a.row(), labels.index("it"), "lines", tmp_path / "lines.png"),
        plots.curves({"a": torch.linspace(1, 0.5, 7)}, "curves", tmp_path / "curves.png"),
        plots.scatter_maps(
            [torch.randn(4, 2)], list("abcd"), [1, 1, 2, 2], ["x"], "map", tmp_path / "map.png"
        ),
    ]
    for p in drawn:
        non_blank_png(p)
        assert p.stat().st_mode & 0o777 == 0o666 & ~plots._umask()  # as open() would make it
    svg = plots.lines(labels, a.row(), 8, "lines", tmp_path / "lines.svg")
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["heat.png", "grid.png", "lines.png", "curves.png", "map.png", "lines.svg"]
    )  # no temporary files left behind


def test_lines_strongest_link_is_fully_opaque(tmp_path):
    peak = 0.18986652791500092  # a float32 weight where (0.8 * v) / v rounds above 0.8
    weights = torch.tensor([peak, 0.05, 0.01])
    assert 0.2 + 0.8 * float(weights[0]) / float(weights.max()) > 1
    non_blank_png(plots.lines(["a", "b", "c"], weights, 0, "t", tmp_path / "l.png"), 2000)


def test_picture_bad_paths(tmp_path):
    with pytest.raises(cl.ContextlensError, match=r"\.png or \.svg"):
        plots.curves({"a": torch.ones(3)}, "t", tmp_path / "x.jpg")
    with pytest.raises(cl.ContextlensError, match="does not exist"):
        plots.curves({"a": torch.ones(3)}, "t", tmp_path / "no" / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_long_text_aggregates(minilm, tmp_path):
    text = " ".join(json.loads(line)["text"] for line in (DATA / "wsc-dev.jsonl").open())
    t = minilm.trace(text, truncate=True)
    assert len(t) == 512
    units = words(t)
    wa = att.word_attention(t.attentions, units)
    assert plots.block_average(wa, plots.MAX_CELLS).shape[-1] == plots.MAX_CELLS
    a = att.attends_to(t, "violence", occurrence=1)
    labels = [u.text for u in units]
    path = plots.lines(labels, a.row(), labels.index("violence"), "l", tmp_path / "l.svg")
    assert path.read_text().count("<path") < 100  # only the top 20 links, not ~450
    non_blank_png(plots.grid(wa, labels, "grid", tmp_path / "g.png"))
    non_blank_png(plots.heatmap(wa.mean((0, 1)), labels, labels, "h", tmp_path / "h.png"))
    s = att.head_stats(t)
    assert s.entropy.shape == (6, 12)
