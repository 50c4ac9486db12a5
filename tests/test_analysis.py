"""Attention and context analysis on the real minilm: hand-checkable facts and bad inputs."""

import math
from pathlib import Path

import pytest
import torch

import contextlens as cl
from contextlens.analysis import attention as att
from contextlens.analysis import context as ctx
from contextlens.analysis.words import locate, words

ANIMAL = "The animal didn't cross the street because it was too wide."
COUNCIL = "The city councilmen refused the demonstrators a permit because they feared violence."
RIVER = "I sat on the bank of the river and watched the water."
MONEY = "I deposited my salary at the bank this morning."
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def animal(minilm):
    return minilm.trace(ANIMAL)


# ── words ───────────────────────────────────────────────────────────────────────────────────
def test_words_group_tokens(minilm):
    t = minilm.trace(COUNCIL + " Emma's mother didn't come.")
    units = words(t)
    texts = [u.text for u in units]
    assert texts[:4] == ["[CLS]", "The", "city", "councilmen"]
    assert texts[texts.index("Emma") :][:4] == ["Emma", "'s", "mother", "didn't"]
    council = units[3]
    assert [t.tokens[i] for i in council.tokens] == ["council", "##men"]
    assert [t.tokens[i] for i in units[texts.index("didn't")].tokens] == ["didn", "'", "t"]
    assert sorted(i for u in units for i in u.tokens) == list(range(len(t)))  # a partition


def test_words_of_unsegmented_text_emoji_and_combining_marks(minilm):
    t = minilm.trace("我爱北京 and 🍕, cafe\u0301! 👩\u200d👩\u200d👧")
    assert [u.text for u in words(t)] == [
        "[CLS]", "我", "爱", "北", "京", "and", "🍕", ",", "cafe\u0301", "!",
        "👩\u200d👩\u200d👧", "[SEP]",
    ]  # fmt: skip
    assert t.tokens[2] == "[UNK]"  # 爱 is not in minilm's vocabulary: still a word of the text
    assert locate(t, "北京").tokens == (3, 4) and locate(t, "爱").text == "爱"


def test_a_piece_of_a_word_made_of_whole_tokens(minilm):
    t = minilm.trace("The riverbank was wet.")  # river ##bank
    bank = locate(t, "bank")
    assert (bank.text, bank.start, bank.end, bank.tokens) == ("bank", 9, 13, (3,))
    assert locate(t, (9, 13)) == bank and locate(t, (4, 13)).text == "riverbank"
    a = att.attends_to(t, "bank")
    assert [w.text for w in a.words] == [
        "[CLS]",
        "The",
        "river",
        "bank",
        "was",
        "wet",
        ".",
        "[SEP]",
    ]
    torch.testing.assert_close(a.weights.sum(-1), torch.ones(6, 12))
    with pytest.raises(cl.ContextlensError, match="only part of a token there.*'riverbank'"):
        locate(t, "riverb")


def test_locate_by_word_span_index(animal):
    it = locate(animal, "IT")  # case-insensitive
    assert (it.text, it.start, it.end) == ("it", 43, 45)
    assert locate(animal, (43, 45)) == it
    assert locate(animal, it.tokens[0]) == it
    assert locate(animal, "the street").text == "the street"
    assert locate(animal, "the", occurrence=2).start == 24
    assert locate(animal, -1).special  # [SEP]


def test_locate_bad_inputs(animal):
    with pytest.raises(cl.ContextlensError, match="not a word of the text; its words are: The"):
        locate(animal, "cat")
    with pytest.raises(cl.ContextlensError, match="occurs 2 times.*--occurrence 1..2"):
        locate(animal, "the")
    with pytest.raises(cl.ContextlensError, match="occurrence must be 1..2"):
        locate(animal, "the", occurrence=3)
    with pytest.raises(cl.ContextlensError, match="not a word"):
        locate(animal, "an")  # whole words only: no match inside "animal"
    with pytest.raises(cl.ContextlensError, match="out of range"):
        locate(animal, 99)
    with pytest.raises(cl.ContextlensError, match="hold no word"):
        locate(animal, (500, 510))


# ── attention ───────────────────────────────────────────────────────────────────────────────
def test_rows_sum_to_one(animal):
    units = words(animal)
    wa = att.word_attention(animal.attentions, units)
    torch.testing.assert_close(animal.attentions.sum(-1), torch.ones(6, 12, len(animal)))
    torch.testing.assert_close(wa.sum(-1), torch.ones(6, 12, len(units)))
    a = att.attends_to(animal, "didn't")
    torch.testing.assert_close(a.weights.sum(-1), torch.ones(6, 12))
    torch.testing.assert_close(a.rollout.sum(-1), torch.ones(6))


def test_multi_token_word_rows_averaged_columns_summed(animal):
    a = att.attends_to(animal, "didn't")  # tokens 3, 4, 5
    didnt = [3, 4, 5]
    rows = animal.attentions[2, 7][didnt].mean(0)  # layer 2, head 7: average of the 3 rows
    j = [u.text for u in a.words].index("didn't")
    assert a.weights[2, 7, j].item() == pytest.approx(rows[didnt].sum().item(), abs=1e-6)
    assert a.weights[2, 7, 1].item() == pytest.approx(rows[1].item(), abs=1e-6)  # "The"


def test_rollout_equals_brute_force_product(minilm):
    t = minilm.trace("Dogs bark.")  # [CLS] dogs bark . [SEP]
    a = t.attentions.double()
    n_layers, _, s, _ = a.shape
    steps = []
    for layer in range(n_layers):
        m = [
            [0.5 * a[layer, :, i, j].mean().item() + 0.5 * (i == j) for j in range(s)]
            for i in range(s)
        ]
        steps.append([[x / sum(row) for x in row] for row in m])
    acc = [[float(i == j) for j in range(s)] for i in range(s)]
    for m in steps:  # acc = m · acc, written out
        acc = [[sum(m[i][k] * acc[k][j] for k in range(s)) for j in range(s)] for i in range(s)]
    got = att.rollout(t.attentions)
    assert torch.allclose(got[-1].double(), torch.tensor(acc, dtype=torch.double), atol=1e-5)
    plain = att.rollout(t.attentions, residual=False)
    product = t.attentions.mean(1)[5] @ t.attentions.mean(1)[4]
    for layer in (3, 2, 1, 0):
        product = product @ t.attentions.mean(1)[layer]
    assert torch.allclose(plain[-1], product, atol=1e-5)
    assert torch.allclose(att.raw_average(t.attentions), t.attentions.mean((0, 1)))


def test_head_stats(animal):
    s = att.head_stats(animal)
    n = len(animal)
    assert s.entropy.shape == (6, 12)
    assert ((s.entropy >= 0) & (s.entropy <= math.log(n) + 1e-5)).all()
    assert ((s.sink >= 0) & (s.sink <= 1 + 1e-6)).all() and (s.distance >= 0).all()
    p = animal.attentions[1, 3]  # one head written out
    ent = -(p * p.log()).sum(-1).mean()
    dist = sum(p[q, k] * abs(q - k) for q in range(n) for k in range(n)) / n
    sink = (p[:, 0] + p[:, -1]).mean()  # [CLS] and [SEP]
    assert s.entropy[1, 3].item() == pytest.approx(ent.item(), abs=1e-5)
    assert s.distance[1, 3].item() == pytest.approx(float(dist), abs=1e-4)
    assert s.sink[1, 3].item() == pytest.approx(sink.item(), abs=1e-6)


def test_head_links_rank(animal):
    src, dst, links = att.head_links(animal, "it", "animal")
    assert (src.text, dst.text, links.shape) == ("it", "animal", (6, 12))
    ranked = att.rank_heads(links, 3)
    flat = int(links.flatten().argmax())
    assert (ranked[0].layer, ranked[0].head) == divmod(flat, 12)
    assert ranked[0].weight >= ranked[1].weight >= ranked[2].weight
    a = att.attends_to(animal, "it")
    assert links[ranked[0].layer, ranked[0].head].item() == pytest.approx(
        a.weights[ranked[0].layer, ranked[0].head, 2].item()
    )


def test_attention_bad_inputs(minilm, animal):
    with pytest.raises(cl.ContextlensError, match="layer 6 is out of range; .* 0..5"):
        att.attends_to(animal, "it").row(6)
    with pytest.raises(cl.ContextlensError, match="head 12 is out of range"):
        att.attends_to(animal, "it").row(0, 12)
    with pytest.raises(cl.ContextlensError, match="no attention weights"):
        att.attends_to(minilm.trace(ANIMAL, attentions=False), "it")


# ── context ─────────────────────────────────────────────────────────────────────────────────
def test_bank_shift_minilm(minilm):
    assert ctx.position_in_input(minilm)  # BERT adds a learned position vector at the input
    same_place = ctx.occurrences(
        minilm, "bank", ["The bank of the river.", "The bank raised its rates."]
    )
    cos = same_place.mean_cosine()
    assert cos[0].item() == pytest.approx(1.0, abs=1e-6)  # same token, same position
    assert cos[-1] < 0.9  # the senses have drifted apart by the last layer
    moved = ctx.occurrences(minilm, "bank", [RIVER, MONEY]).mean_cosine()
    assert 0.9 < moved[0] < 0.999  # positions 5 and 7: differs already at layer 0
    assert moved[-1] < moved[0] - 0.1


def test_sense_groups_and_neighbours(minilm):
    occ = ctx.occurrences(
        minilm,
        "bank",
        [
            RIVER,
            "The boat drifted to the muddy bank of the stream.",
            MONEY,
            "The bank approved the loan for our new house.",
        ],
    )
    assert ctx.clusters(occ.vectors[:, -1], 2) == [1, 1, 2, 2]
    near = ctx.nearest_words(minilm, occ.vectors[:, 0], 3)
    assert all(row[0][0] == "bank" for row in near)  # layer 0: the word's own embedding row
    away = ctx.nearest_words(minilm, occ.vectors[:, 0], 3, exclude="bank")
    assert all(not w.startswith("bank") for row in away for w, _ in row)
    xy = ctx.project_2d(occ.vectors[:, -1])
    assert xy.shape == (4, 2)


def test_right_context_encoder(minilm):
    r = ctx.right_context(minilm, RIVER, "bank")
    assert r.prefix == "I sat on the bank"
    assert r.cosine[0].item() == pytest.approx(1.0, abs=1e-6)  # same token, same position
    assert r.cosine[-1] < 0.95  # "of the river …" changed it


def test_context_bad_inputs(minilm):
    with pytest.raises(cl.ContextlensError, match="got 1 sentence; .* at least two"):
        ctx.occurrences(minilm, "bank", [RIVER])
    with pytest.raises(cl.ContextlensError, match="sentence 2: 'bank' is not a word"):
        ctx.occurrences(minilm, "bank", [RIVER, "No such word here."])
    with pytest.raises(cl.ContextlensError, match="last word"):
        ctx.right_context(minilm, "I went to the bank", "bank")
    with pytest.raises(cl.ContextlensError, match="cannot make 5 groups of 2"):
        ctx.clusters(torch.randn(2, 4), 5)
