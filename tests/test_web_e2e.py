"""The page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
type, hover, slide, click — and check what is drawn against what the API says. Each test writes
a screenshot of its view to out/screenshots/."""

import json
import math
import tempfile
import urllib.request
from pathlib import Path

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

SHOTS = Path(__file__).resolve().parents[1] / "out" / "screenshots"
IT = "The animal didn't cross the street because it was too tired."
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000", "--hide-scrollbars",
]  # fmt: skip


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


def settle(browser, view: str) -> None:
    """Wait until `view` has drawn (its aria-busy goes false) and no error is shown."""

    def done(d):
        root = d.find_element(By.ID, f"view-{view}")
        return root.get_attribute("aria-busy") == "false" and root.is_displayed()

    WebDriverWait(browser, 120, 0.1).until(done)
    error = browser.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text


def open_view(browser, url: str, view: str, model: str = "minilm", text: str = IT) -> None:
    browser.get(f"{url}/?model={model}")
    settle(browser, "tokens")
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    browser.find_element(By.CSS_SELECTOR, f'#tabs button[data-view="{view}"]').click()
    settle(browser, view)


def shoot(browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script(
        "return document.body.scrollHeight + window.outerHeight - window.innerHeight"
    )
    browser.set_window_size(1400, min(max(height + 20, 700), 2400))
    browser.save_screenshot(str(SHOTS / f"{name}.png"))
    browser.set_window_size(1400, 1000)


def test_type_a_sentence_see_tokens(browser, url):
    open_view(browser, url, "tokens", text="A bank by the river.")
    chips = browser.find_elements(By.CSS_SELECTOR, "#token-chips .chip")
    want = api(url, "/api/tokens", model="minilm", text="A bank by the river.")
    assert [c.get_attribute("title").split(": ", 1)[1] for c in chips] == want["tokens"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#vectors canvas.strip")) == 3 * len(chips)
    shoot(browser, "tokens")


def test_hover_it_strongest_line(browser, url):
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
    shoot(browser, "attention")


def probabilities(browser) -> list[float]:
    return [float(td.text) for td in browser.find_elements(By.CSS_SELECTOR, "#steps-table td.p")]


def test_temperature_slider_changes_the_softmax(browser, url):
    open_view(browser, url, "attention")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#steps-table td.p")
    )
    at_one = probabilities(browser)
    model = [
        float(tr.find_elements(By.TAG_NAME, "td")[-1].text)
        for tr in browser.find_elements(By.CSS_SELECTOR, "#steps-table tbody tr")
    ]
    assert at_one == pytest.approx(model, abs=2e-4)  # T = 1 is the model's own weights
    slider = browser.find_element(By.ID, "temperature")
    slider.click()  # the middle of the track
    for _ in range(60):
        slider.send_keys(Keys.ARROW_LEFT)
    assert browser.find_element(By.ID, "temperature-value").text == "0.1"
    sharp = probabilities(browser)
    for _ in range(29):
        slider.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "temperature-value").text == "3.0"
    flat = probabilities(browser)
    assert max(sharp) > max(at_one) > max(flat)
    assert sum(flat) == pytest.approx(1, abs=0.01) and sum(sharp) == pytest.approx(1, abs=0.01)
    entropy = [-sum(p * math.log(p) for p in ps if p > 0) for ps in (sharp, at_one, flat)]
    assert entropy == sorted(entropy)
    shoot(browser, "attention-steps")


def test_next_token_paris_then_append(browser, url):
    open_view(browser, url, "next", model="smollm2", text="The capital of France is")
    first = browser.find_element(By.CSS_SELECTOR, "#candidates .cand")
    assert first.find_element(By.CSS_SELECTOR, ".tok").text == "·Paris"
    shoot(browser, "next-token")
    first.click()
    settle(browser, "next")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#generated li"))
    assert (
        browser.find_element(By.ID, "text").get_attribute("value")
        == "The capital of France is Paris"
    )
    assert browser.find_element(By.CSS_SELECTOR, "#generated li").text.startswith("·Paris →")
    temperature = browser.find_element(By.ID, "next-temperature")
    before = browser.find_element(By.CSS_SELECTOR, "#candidates .cand .p").text
    browser.execute_script(
        "arguments[0].value = 2.5; arguments[0].dispatchEvent(new Event('change'))", temperature
    )
    settle(browser, "next")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#candidates .cand .p").text != before
    )
    shoot(browser, "next-token-appended")


def test_context_bank_curve(browser, url):
    open_view(browser, url, "context")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#shift-chart polyline")
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#shift-chart polyline")) == 2
    rows = browser.find_elements(By.CSS_SELECTOR, "#shift-nearest tbody tr")
    assert len(rows) == 7  # the embeddings + 6 layers
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#coref-attention"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#coref-attention polyline")) == 2
    shoot(browser, "context")


def test_word_space_analogy(browser, url):
    open_view(browser, url, "wordspace")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#analogy td.tok"))
    for field, word in (("an-a", "paris"), ("an-b", "france"), ("an-c", "rome")):
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
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#words-map g"))
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sentence-map g"))
    labels = [
        g.get_attribute("data-label")
        for g in browser.find_elements(By.CSS_SELECTOR, "#sentence-map g")
    ]
    assert "animal" in labels and "street" in labels
    shoot(browser, "word-space")


def test_search_explains_hits(browser, url):
    open_view(browser, url, "search")
    box = browser.find_element(By.ID, "search-query")
    box.send_keys("bread baking in the oven", Keys.ENTER)
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-hits .hit")
    )
    first = browser.find_element(By.CSS_SELECTOR, "#search-hits .hit h2").text
    assert first.startswith("1. ") and "bread.txt" in first
    assert browser.find_elements(By.CSS_SELECTOR, "#search-hits .hit .heat span")
    shoot(browser, "search")


def test_notebook_display_draws_offline(browser, app, tmp_path):
    trace = app.state.registry.get("minilm").trace(IT)
    page = tmp_path / "notebook.html"
    page.write_text(
        f"<!doctype html><meta charset=utf-8>{show(trace, layer=3).html}", encoding="utf-8"
    )
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.hv line"))
    words = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.hv text.q")]
    assert words[:3] == ["[CLS]", "The", "animal"]
    browser.find_element(By.CSS_SELECTOR, ".contextlens-headview").screenshot(
        str(SHOTS / "notebook.png")
    )
