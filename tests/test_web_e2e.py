"""The page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium),
offline — every host name but 127.0.0.1 fails to resolve: type, hover, slide, click, and check
what is drawn against what the API says. Each test screenshots its view into a temporary
folder; CONTEXTLENS_REGENERATE_SCREENSHOTS=1 writes them to docs/screenshots instead."""

import json
import math
import os
import tempfile
import urllib.request
from itertools import combinations
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait
from web_corpus import build_index

from contextlens.web import create_app, show
from contextlens.web.server import running

DOCS_SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
IT = "The animal didn't cross the street because it was too tired."
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # offline
]  # fmt: skip


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("CONTEXTLENS_REGENERATE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import contextlens as cl

    index = build_index(tmp_path_factory.mktemp("search"), cl.load("minilm"))
    return create_app(["minilm", "smollm2", "glove-50"], index=str(index))


@pytest.fixture(scope="module")
def url(app):
    with running(app) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    profile = tempfile.TemporaryDirectory()
    for flag in [*FLAGS, f"--user-data-dir={profile.name}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()
    profile.cleanup()


def api(url: str, path: str, **body) -> dict:
    request = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.load(r)


def drawn(browser, view: str) -> bool:
    root = browser.find_element(By.ID, f"view-{view}")
    return root.get_attribute("aria-busy") == "false" and root.is_displayed()


def settle(browser, view: str) -> None:
    """Wait until `view` has drawn (its aria-busy goes false) and no error is shown."""
    WebDriverWait(browser, 120, 0.1).until(lambda d: drawn(d, view))
    error = browser.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text


def open_view(browser, url: str, view: str, model: str = "minilm", text: str = IT) -> None:
    browser.get(f"{url}/?model={model}")
    settle(browser, "tokens")
    type_text(browser, text)
    browser.find_element(By.CSS_SELECTOR, f'#tabs button[data-view="{view}"]').click()
    settle(browser, view)


def open_address(browser, url: str, view: str, model: str, text: str) -> None:
    """Open a view by its address (any text: Selenium cannot type characters beyond the BMP)."""
    browser.get(f"{url}/?view={view}&model={model}&text={quote(text)}")
    settle(browser, view)


def type_text(browser, text: str) -> None:
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text, Keys.ENTER)


def wait_for(browser, css: str, timeout: int = 120):
    WebDriverWait(browser, timeout, 0.1).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
    return browser.find_elements(By.CSS_SELECTOR, css)


def shoot(browser, shots: Path, name: str) -> None:
    height = browser.execute_script(
        "return document.body.scrollHeight + window.outerHeight - window.innerHeight"
    )
    browser.set_window_size(1400, min(max(height + 20, 700), 2400))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / f"{name}.png"))
    browser.set_window_size(1400, 1000)


def requested(browser) -> list[str]:
    """Every URL the browser asked for since the last call (from its network log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def expected_labels(d: dict, text: str) -> list[str]:
    """What a chip should read: the text a token covers (cut by code points, as the server
    counts), '##' kept for word pieces, spaces of a blank token as ·, or the special token."""
    out = []
    for tok, (a, b), special in zip(d["tokens"], d["offsets"], d["special"], strict=True):
        piece = text[a:b]
        if special:
            out.append(tok)
        elif not piece.strip():
            out.append(piece.replace(" ", "·").replace("\n", "⏎") or tok)
        else:
            out.append("##" + piece if tok.startswith("##") else piece.strip())
    return out


def chip_labels(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#token-chips .chip')]"
        ".map((c) => c.firstChild.textContent)"
    )


def test_type_a_sentence_see_tokens(browser, url, shots):
    open_view(browser, url, "tokens", text="A bank by the river.")
    chips = browser.find_elements(By.CSS_SELECTOR, "#token-chips .chip")
    want = api(url, "/api/tokens", model="minilm", text="A bank by the river.")["tokens"]
    assert [c.get_attribute("title").split(": ", 1)[1] for c in chips] == want["tokens"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#vectors canvas.strip")) == 3 * len(chips)
    shoot(browser, shots, "tokens")


UNICODE = "I 😀 saw 東京 and the cafe\u0301 👍🏽 — it was fun, 𝒻𝓊𝓃 𝓉𝑜𝑜."


@pytest.mark.parametrize("model", ["minilm", "smollm2"])
def test_labels_after_emoji_cjk_and_combining_marks(browser, url, model):
    open_address(browser, url, "tokens", model, UNICODE)
    want = expected_labels(api(url, "/api/tokens", model=model, text=UNICODE)["tokens"], UNICODE)
    assert chip_labels(browser) == want
    assert "it" in want and "fun" in [w.strip() for w in want]
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-view="attention"]').click()
    settle(browser, "attention")
    focus = browser.find_element(By.CSS_SELECTOR, "#headview text.q.focus")
    assert focus.text == "it"  # the default query word, found after the emoji
    title = browser.find_element(By.ID, "steps-title").text
    assert title.startswith("Step by step: “it” in layer")


def test_hover_it_strongest_line(browser, url, shots):
    open_view(browser, url, "attention")
    layer = int(
        Select(browser.find_element(By.ID, "layer")).first_selected_option.get_attribute("value")
    )
    it = next(
        t for t in browser.find_elements(By.CSS_SELECTOR, "#headview text.q") if t.text == "it"
    )
    ActionChains(browser).move_to_element(it).perform()
    shown = [
        (float(line.get_attribute("data-w")), int(line.get_attribute("data-k")))
        for line in browser.find_elements(By.CSS_SELECTOR, "#headview line.on")
    ]
    q = int(it.get_attribute("data-i"))
    want = api(url, "/api/attention", model="minilm", text=IT, layer=layer, head=None)
    row = [(w, k) for qq, k, w in want["edges"] if qq == q]
    assert max(shown)[1] == max(row)[1]  # the thickest line goes to the key the API ranks first
    assert len(shown) == len(row)
    assert all(
        line.get_attribute("data-q") == str(q)
        for line in browser.find_elements(By.CSS_SELECTOR, "#headview line.on")
    )
    shoot(browser, shots, "attention")


def table(browser, css: str) -> list[float]:
    return [float(td.text) for td in browser.find_elements(By.CSS_SELECTOR, f"#steps-table {css}")]


def pick_head(browser, value: str) -> None:
    old = browser.find_element(By.ID, "steps-title")
    Select(browser.find_element(By.ID, "head")).select_by_value(value)
    WebDriverWait(browser, 60).until(lambda d: _stale(old))
    settle(browser, "attention")
    wait_for(browser, "#steps-table td.p")


def _stale(element) -> bool:
    try:
        element.is_enabled()
        return False
    except Exception:
        return True


def test_steps_follow_the_head_selection(browser, url):
    open_view(browser, url, "attention")
    wait_for(browser, "#steps-table td.p")
    layer = int(
        Select(browser.find_element(By.ID, "layer")).first_selected_option.get_attribute("value")
    )
    q = int(browser.find_element(By.CSS_SELECTOR, "#headview text.q.focus").get_attribute("data-i"))
    for value, label in (("", "all 12 heads averaged"), ("2", "head 3")):
        if value:
            pick_head(browser, value)
        assert browser.find_element(By.ID, "attention-title").text.endswith(label)
        assert browser.find_element(By.ID, "steps-title").text.endswith(label)
        head = int(value) if value else None
        d = api(url, "/api/steps", model="minilm", text=IT, layer=layer, head=head, query=q)
        heads = d["weights"]
        mean = [sum(h[k] for h in heads) / len(heads) for k in range(len(heads[0]))]
        rows = browser.find_elements(By.CSS_SELECTOR, "#steps-table tbody tr")
        keys = [int(tr.get_attribute("data-k")) for tr in rows]
        assert table(browser, "td.model") == pytest.approx([mean[k] for k in keys], abs=1e-4)
        assert table(browser, "td.p") == pytest.approx([mean[k] for k in keys], abs=2e-4)
    strips = browser.find_elements(By.CSS_SELECTOR, "#steps canvas.strip")
    assert len(strips) == 1  # one head's output (the average showed one per head)


def test_temperature_slider_changes_the_softmax(browser, url, shots):
    open_view(browser, url, "attention")
    wait_for(browser, "#steps-table td.p")
    pick_head(browser, "4")
    at_one = table(browser, "td.p")
    assert at_one == pytest.approx(table(browser, "td.model"), abs=2e-4)  # T = 1: the model's
    slider = browser.find_element(By.ID, "temperature")
    slider.click()  # the middle of the track
    for _ in range(60):
        slider.send_keys(Keys.ARROW_LEFT)
    assert browser.find_element(By.ID, "temperature-value").text == "0.1"
    sharp = table(browser, "td.p")
    for _ in range(29):
        slider.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "temperature-value").text == "3.0"
    flat = table(browser, "td.p")
    assert max(sharp) > max(at_one) > max(flat)
    assert sum(flat) == pytest.approx(1, abs=0.01) and sum(sharp) == pytest.approx(1, abs=0.01)
    entropy = [-sum(p * math.log(p) for p in ps if p > 0) for ps in (sharp, at_one, flat)]
    assert entropy == sorted(entropy)
    shoot(browser, shots, "attention-steps")


def page_height(browser) -> int:
    return browser.execute_script("return document.documentElement.scrollHeight")


def test_long_text_scrolls_inside_the_view(browser, url):
    text = " ".join(["the river bank was muddy and the boat drifted"] * 40)  # 362 tokens
    open_view(browser, url, "attention", text=text)
    box = browser.find_element(By.ID, "headview-box")
    inner = browser.execute_script("return arguments[0].scrollHeight", box)
    assert inner > 7000  # every word is there, one row each …
    assert box.size["height"] < 800 and page_height(browser) < 2200  # … inside a scroll box
    assert browser.find_element(By.ID, "steps").location["y"] < 400  # beside it, not below


def test_deep_model_shows_steps_beside_the_lines(browser, url, shots):
    open_view(browser, url, "attention", model="smollm2")
    wait_for(browser, "#steps-table td.p")
    steps = browser.find_element(By.ID, "steps")
    assert steps.location["y"] + 200 < browser.execute_script("return window.innerHeight")
    grid = browser.find_element(By.ID, "grid-box")
    assert grid.get_attribute("open") is None  # 30 × 9 heads: folded until asked for
    grid.find_element(By.TAG_NAME, "summary").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#grid canvas")) == 30 * 9
    shoot(browser, shots, "attention-smollm2")


def candidates(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#candidates .cand .tok')].map((t) => t.textContent)"
    )


def set_value(browser, element, value) -> None:
    browser.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'))",
        element,
        value,
    )


def test_next_token_paris_then_append(browser, url, shots):
    open_view(browser, url, "next", model="smollm2", text="The capital of France is")
    first = browser.find_element(By.CSS_SELECTOR, "#candidates .cand")
    assert first.find_element(By.CSS_SELECTOR, ".tok").text == "·Paris"
    assert "kept" not in browser.find_element(By.ID, "next-note").text  # no filter set
    shoot(browser, shots, "next-token")
    first.click()
    settle(browser, "next")
    wait_for(browser, "#generated li")
    assert (
        browser.find_element(By.ID, "text").get_attribute("value")
        == "The capital of France is Paris"
    )
    assert browser.find_element(By.CSS_SELECTOR, "#generated li").text.startswith("·Paris →")
    before = browser.find_element(By.CSS_SELECTOR, "#candidates .cand .p").text
    set_value(browser, browser.find_element(By.ID, "next-temperature"), 2.5)
    settle(browser, "next")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#candidates .cand .p").text != before
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#generated li")  # same text: history kept
    shoot(browser, shots, "next-token-appended")
    type_text(browser, "Once upon a time")
    settle(browser, "next")
    assert not browser.find_elements(By.CSS_SELECTOR, "#generated li")  # a new text: a new history


def test_next_token_filters_and_greedy(browser, url):
    open_view(browser, url, "next", model="smollm2", text="The capital of France is")
    set_value(browser, browser.find_element(By.ID, "top-k"), "3")
    WebDriverWait(browser, 60).until(lambda d: len(candidates(d)) == 3)
    settle(browser, "next")
    assert candidates(browser) == ["·Paris", "·the", "·London"]
    assert "3 of 49,152 tokens kept" in browser.find_element(By.ID, "next-note").text
    assert "0.0%" not in browser.find_element(By.ID, "candidates").text
    set_value(browser, browser.find_element(By.ID, "top-k"), "")
    WebDriverWait(browser, 60).until(lambda d: len(candidates(d)) == 12)
    settle(browser, "next")
    set_value(browser, browser.find_element(By.ID, "next-temperature"), 0)
    WebDriverWait(browser, 60).until(lambda d: len(candidates(d)) == 1)
    settle(browser, "next")
    assert candidates(browser) == ["·Paris"]
    assert browser.find_element(By.ID, "next-temperature-value").text == "0 (greedy)"
    assert "kept" not in browser.find_element(By.ID, "next-note").text
    set_value(browser, browser.find_element(By.ID, "next-temperature"), 1)
    settle(browser, "next")


def test_context_bank_curve(browser, url, shots):
    open_view(browser, url, "context")
    wait_for(browser, "#shift-chart polyline")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#shift-chart polyline")) == 2
    rows = browser.find_elements(By.CSS_SELECTOR, "#shift-nearest tbody tr")
    assert len(rows) == 7  # the embeddings + 6 layers
    wait_for(browser, "#coref-attention")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#coref-attention polyline")) == 2
    assert "animal, street" in browser.find_element(By.ID, "coref-proposed").text
    shoot(browser, shots, "context")


def coref_result(browser) -> str:
    WebDriverWait(browser, 120, 0.1).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#coref-result > *")
    )
    return browser.find_element(By.ID, "coref-result").text


def test_context_pronoun_from_any_text(browser, url):
    trophy = "The trophy didn't fit in the suitcase because it was too big."
    open_view(browser, url, "context", text=trophy)
    assert "trophy, suitcase" in coref_result(browser)
    assert browser.find_element(By.ID, "coref-candidates").get_attribute("placeholder") == (
        "trophy, suitcase"
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#coref-attention polyline")) == 2
    twice = "The dog saw the cat and it ran. Then it slept on the mat."
    type_text(browser, twice)
    settle(browser, "context")
    assert "trophy" not in coref_result(browser)  # the old text's chart is gone
    pronoun = browser.find_element(By.ID, "coref-pronoun")
    pronoun.send_keys("it", Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda d: "occurs 2 times" in coref_result(d))
    assert not browser.find_elements(By.CSS_SELECTOR, "#coref-attention")  # error: no old chart
    assert "occurrence=1..2" in coref_result(browser)
    browser.find_element(By.ID, "coref-occurrence").send_keys("2", Keys.ENTER)
    wait_for(browser, "#coref-attention polyline")
    assert "dog, cat" in coref_result(browser)


def test_context_on_a_decoder_says_why_no_neighbours(browser, url):
    open_view(browser, url, "context", model="smollm2")
    note = wait_for(browser, "#shift-nearest-note")[0].text
    assert "predict the next token" in note and not browser.find_elements(By.ID, "shift-nearest")


def test_an_error_clears_the_view(browser, url):
    open_view(browser, url, "tokens", text="A bank by the river.")
    assert browser.find_elements(By.CSS_SELECTOR, "#token-chips .chip")
    type_text(browser, "word " * 600)  # over the token limit
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "over the limit of 512" in browser.find_element(By.ID, "error").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#view-tokens *")


def label_boxes(browser, svg_id: str) -> list[dict]:
    return browser.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} g[data-label]`)].map((g) => {"
        "  const t = g.querySelector('text').getBBox(), c = g.querySelector('circle');"
        "  return {label: g.dataset.label, x: t.x, y: t.y, w: t.width, h: t.height,"
        "          cx: +c.getAttribute('cx'), cy: +c.getAttribute('cy')}; })",
        svg_id,
    )


def overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and (a["y"] < b["y"] + b["h"] - 2 and b["y"] < a["y"] + a["h"] - 2)
    )


def covers_dot(box: dict, dot: dict) -> bool:
    return (
        box["x"] < dot["cx"] + 4.5
        and dot["cx"] - 4.5 < box["x"] + box["w"]
        and (box["y"] < dot["cy"] + 4.5 and dot["cy"] - 4.5 < box["y"] + box["h"] - 2)
    )


def assert_labels_apart(browser, svg_id: str) -> None:
    boxes = label_boxes(browser, svg_id)
    assert len(boxes) >= 10
    assert not [(a["label"], b["label"]) for a, b in combinations(boxes, 2) if overlaps(a, b)]
    assert not [
        (a["label"], b["label"]) for a in boxes for b in boxes if a is not b and covers_dot(a, b)
    ]


def test_word_space_analogy(browser, url, shots):
    open_view(browser, url, "wordspace")
    wait_for(browser, "#analogy td.tok")
    for field, word in (("an-a", "Paris"), ("an-b", "France"), ("an-c", "Rome")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(word)
    browser.find_element(By.CSS_SELECTOR, "#analogy-form button").click()
    WebDriverWait(browser, 60).until(lambda d: "rome" in d.find_element(By.ID, "an-out").text)
    answer = browser.find_element(By.CSS_SELECTOR, "#analogy td.tok").text
    assert (
        answer
        == api(url, "/api/analogy", a="paris", b="france", c="rome")["answers"][0]["word"]
        == "italy"
    )
    wait_for(browser, "#words-map g")
    labels = [g.get_attribute("data-label") for g in wait_for(browser, "#sentence-map g")]
    assert "animal" in labels and "street" in labels
    assert_labels_apart(browser, "words-map")
    assert_labels_apart(browser, "sentence-map")
    shoot(browser, shots, "word-space")


def test_maps_offer_pca_umap_and_tsne(browser, url, shots):
    open_view(browser, url, "wordspace")
    menu = Select(browser.find_element(By.ID, "projection"))
    assert [o.get_attribute("value") for o in menu.options] == ["pca", "umap", "tsne"]
    assert [o.text for o in menu.options] == ["PCA", "UMAP", "t-SNE"]
    for method in ("umap", "tsne"):
        Select(browser.find_element(By.ID, "projection")).select_by_value(method)
        for svg_id in ("words-map", "sentence-map"):
            WebDriverWait(browser, 120, 0.2).until(
                lambda d, css=f"#{svg_id}[data-method={method}]": d.find_elements(
                    By.CSS_SELECTOR, css
                )
            )
        assert len(browser.find_elements(By.CSS_SELECTOR, "#words-map g[data-label]")) == 12
        assert_labels_apart(browser, "words-map")
    shoot(browser, shots, "word-space-tsne")
    Select(browser.find_element(By.ID, "projection")).select_by_value("pca")
    wait_for(browser, "#words-map[data-method=pca]")


def test_search_explains_hits(browser, url, shots):
    open_view(browser, url, "search")
    box = browser.find_element(By.ID, "search-query")
    box.send_keys("bread baking in the oven", Keys.ENTER)
    wait_for(browser, "#search-hits .hit")
    first = browser.find_element(By.CSS_SELECTOR, "#search-hits .hit h2").text
    assert first.startswith("1. ") and "bread.txt" in first
    assert browser.find_elements(By.CSS_SELECTOR, "#search-hits .hit .heat span")
    shoot(browser, shots, "search")


def local(address: str, base: str) -> bool:
    """A URL that stays on this server: under its base URL, or data: (inline)."""
    return address.startswith(base + "/") or address == base or address.startswith("data:")


def test_pages_load_nothing_from_outside(browser, url, shots, app):
    requested(browser)  # forget what earlier tests asked for
    operations = sum(len(m) for m in app.openapi()["paths"].values())
    for path in ("/docs", "/redoc", "/"):
        browser.get(url + path)
        if path == "/":
            settle(browser, "tokens")
        else:
            sections = wait_for(browser, "section.endpoint")
            assert len(sections) == operations
            assert any(s.text.startswith("POST /api/next") for s in sections)
            assert browser.current_url == url + "/docs"
            assert "temperature" in browser.find_element(By.TAG_NAME, "main").text
        sources = browser.execute_script(
            "return [...document.querySelectorAll('script[src], img[src], iframe[src]')]"
            ".map((e) => e.src).concat([...document.querySelectorAll('link[href]')]"
            ".map((e) => e.href))"
        )
        assert sources and all(local(s, url) for s in sources), sources
        host = urlsplit(url).hostname
        assert all(urlsplit(u).hostname in (host, None) for u in requested(browser))
    browser.get(url + "/docs")
    wait_for(browser, "section.endpoint")
    shoot(browser, shots, "api")


def test_notebook_display_draws_offline(browser, app, tmp_path, shots):
    trace = app.state.registry.get("minilm").trace(IT)
    page = tmp_path / "notebook.html"
    page.write_text(
        f"<!doctype html><meta charset=utf-8>{show(trace, layer=3).html}", encoding="utf-8"
    )
    browser.get(page.as_uri())
    wait_for(browser, "svg.hv line", 30)
    words = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.hv text.q")]
    assert words[:3] == ["[CLS]", "The", "animal"]
    browser.find_element(By.CSS_SELECTOR, ".contextlens-headview").screenshot(
        str(shots / "notebook.png")
    )
