"""`refute view`: the real app on a loopback port, read over HTTP and driven in headless Chromium.

The store is built here from scripted replies (no model): a harmful run and a second run of the
same prompts (to compare), and a benign run whose replies carry markup that must render as text.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from refute.cli import app
from refute.store import SampleRecord, ScoreRecord, Store
from refute.view import ViewConfig, create_app, serving

SCORER = "refusal_patterns"
SCRIPT = "<script>window.__pwned = 1</script><b>bold?</b>"


def _run(store: Store, dataset: str, refused: list[bool], *, epochs: int = 2, name: str | None = None,
         chains: tuple[str, ...] = ("none",)) -> str:
    run = store.create_run(kind="eval", name=name, model_spec="scripted", model_revision=None, model={},
                           config={"dataset": dataset, "generate": {"max_tokens": 64}}, versions={},
                           dataset_name=dataset, dataset_hash="h", n_planned=len(refused) * epochs * len(chains))
    for chain in chains:
        for i, r in enumerate(refused):
            for e in range(epochs):
                flip = r if e == 0 else (r if i % 3 else not r)  # some prompts differ between epochs
                reply = f"I'm sorry, I can't help with request {i}." if flip else f"Sure, step one for {i}. {SCRIPT}"
                sample = SampleRecord(
                    run_id=run.id, prompt_id=f"p{i:02d}", category="cyber" if i % 2 else "bio", epoch=e,
                    transform_chain=chain, seed=i * 10 + e,
                    messages=[{"role": "user", "content": f"request {i} {chain}"},
                              {"role": "assistant", "content": reply}],
                    completion=reply, metadata={"turns": [{"attacker": f"try {i}"}]} if chain != "none" else {})
                store.record_sample(sample, [ScoreRecord(scorer=SCORER, scorer_version="1", value=float(flip),
                                                         label="full_refusal" if flip else "full_compliance",
                                                         explanation="matched a refusal phrase" if flip else None)])
    store.set_status(run.id, "completed")
    return run.id


@pytest.fixture(scope="module")
def view_store(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("view") / "refute.db"
    with Store(path) as store:
        runs = {
            "harmful": _run(store, "harmful", [i % 4 != 0 for i in range(12)], name="baseline",
                            chains=("none", "base64")),
            "after": _run(store, "harmful", [i % 2 == 0 for i in range(12)], name="after"),
            "benign": _run(store, "benign-lookalike", [i == 0 for i in range(6)], epochs=1),
        }
    return path, runs


@pytest.fixture(scope="module")
def base_url(view_store):
    path, _ = view_store
    with serving(create_app(ViewConfig(path, labeller="tester"))) as url:
        yield url


def _get(url: str, **params: str) -> httpx.Response:
    return httpx.get(url, params=params, timeout=30)


# --- over HTTP ----------------------------------------------------------------------------------


def test_the_runs_page_lists_and_filters_runs(base_url, view_store):
    _, runs = view_store
    page = _get(f"{base_url}/runs").text
    assert all(r in page for r in runs.values())
    only = _get(f"{base_url}/runs", dataset="benign-lookalike").text
    assert runs["benign"] in only and runs["harmful"] not in only
    named = _get(f"{base_url}/runs", q="after").text
    assert runs["after"] in named and runs["harmful"] not in named


def test_a_run_page_shows_rates_with_intervals_and_the_distribution(base_url, view_store):
    _, runs = view_store
    page = _get(f"{base_url}/runs/{runs['harmful']}").text
    assert 'data-table="rates-none"' in page and 'data-table="rates-base64"' in page
    # 12 prompts x 2 epochs; an interval is printed beside each rate
    assert re.search(r'<span class="est">0\.\d{3}</span> <span class="ci">\[0\.\d{3}, [01]\.\d{3}\]</span>', page)
    assert page.count('<g class="bar">') == 10


def test_samples_filter_by_outcome_category_epoch_and_text_and_page_by_key(base_url, view_store):
    _, runs = view_store
    url = f"{base_url}/runs/{runs['harmful']}/samples"
    everything = _get(url, limit="25")
    assert 'id="match-count">48<' in everything.text  # 12 prompts x 2 epochs x 2 chains
    assert everything.text.count("<tr data-sample=") == 25
    nxt = re.search(r'href="\?([^"]+)" id="next-page"', everything.text)
    assert nxt is not None
    second = httpx.get(f"{url}?{nxt.group(1).replace('&amp;', '&')}", timeout=30).text
    first_ids = set(re.findall(r'<tr data-sample="(\d+)"', everything.text))
    second_ids = set(re.findall(r'<tr data-sample="(\d+)"', second))
    assert len(second_ids) == 23 and not first_ids & second_ids
    refused = _get(url, scorer=SCORER, outcome="high", category="cyber", epoch="0", transform="none")
    # cyber = odd prompts 1..11; refused at epoch 0 unless i % 4 == 0 (never for odd i): 6
    assert 'id="match-count">6<' in refused.text
    text = _get(url, q="request 7 base64")
    assert 'id="match-count">2<' in text.text  # two epochs of one prompt under one chain


def test_replies_to_harmful_requests_are_hidden_until_revealed(base_url, view_store):
    _, runs = view_store
    listing = _get(f"{base_url}/runs/{runs['harmful']}/samples").text
    assert "Sure, step one" not in listing and "hidden (" in listing
    sid = re.search(r'<tr data-sample="(\d+)"', listing).group(1)
    hidden = _get(f"{base_url}/samples/{sid}").text
    assert "reply hidden" in hidden and "can&#39;t help" not in hidden and "Sure, step one" not in hidden
    shown = _get(f"{base_url}/samples/{sid}", reveal="1").text
    assert "reply hidden" not in shown and ("can&#39;t help" in shown or "Sure, step one" in shown)


def test_model_output_is_escaped(base_url, view_store):
    _, runs = view_store
    listing = _get(f"{base_url}/runs/{runs['benign']}/samples").text
    assert "<script>window.__pwned" not in listing
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in listing


def test_compare_lists_the_prompts_that_differ_first(base_url, view_store):
    _, runs = view_store
    page = _get(f"{base_url}/compare", a=runs["harmful"], b=runs["after"], scorer=SCORER).text
    assert 'data-table="comparison"' in page
    rows = re.findall(r'<tr( class="differs")?><td>(p\d+)</td>', page)
    assert len(rows) == 12
    differs = [bool(flag) for flag, _ in rows]
    assert any(differs) and differs == sorted(differs, reverse=True)  # every differing prompt before the rest


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_exports_hold_exactly_the_filtered_samples(base_url, view_store, fmt):
    _, runs = view_store
    response = _get(f"{base_url}/runs/{runs['harmful']}/export.{fmt}", scorer=SCORER, outcome="low",
                    transform="none")
    assert response.status_code == 200
    if fmt == "jsonl":
        rows = [json.loads(line) for line in response.text.splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(response.text)))
    else:
        import pyarrow.parquet as pq
        rows = pq.read_table(io.BytesIO(response.content)).to_pylist()
    # compliance under no transform: _run's rule, refused = i % 4 != 0, flipped at epoch 1 when i % 3 == 0
    def refused(i: int, e: int) -> bool:
        return (i % 4 != 0) != (e == 1 and i % 3 == 0)

    expected = sum(1 for i in range(12) for e in range(2) if not refused(i, e))
    assert len(rows) == expected
    assert all(float(r["score"]) == 0.0 and r["transform_chain"] == "none" for r in rows)


def test_bad_input_gets_a_page_that_says_what_to_fix(base_url, view_store):
    _, runs = view_store
    assert _get(f"{base_url}/runs/nosuchrun").status_code == 404
    bad = _get(f"{base_url}/runs/{runs['harmful']}/samples", epoch="two")
    assert bad.status_code == 400 and "epoch: not a number" in bad.text
    assert _get(f"{base_url}/compare", a=runs["harmful"]).status_code == 400
    assert _get(f"{base_url}/runs/{runs['harmful']}/samples", limit="lots").status_code == 400
    assert _get(f"{base_url}/samples/999999").status_code == 404


def test_a_label_post_without_the_pages_secret_is_refused(base_url, view_store):
    path, runs = view_store
    response = httpx.post(f"{base_url}/runs/{runs['after']}/label", timeout=30,
                          data={"scorer": SCORER, "sample_id": "1", "label": "full_refusal"})
    assert response.status_code == 400
    with Store(path) as store:
        assert store.labels(runs["after"]) == []


def test_off_loopback_every_request_needs_the_token(view_store):
    path, _ = view_store
    with serving(create_app(ViewConfig(path, token="s3cret"))) as url:
        assert _get(f"{url}/runs").status_code == 401
        assert _get(f"{url}/runs", token="wrong").status_code == 401
        with httpx.Client(timeout=30) as client:
            assert client.get(f"{url}/runs", params={"token": "s3cret"}).status_code == 200
            assert client.get(f"{url}/runs").status_code == 200  # the cookie carries it


def test_refute_view_refuses_a_missing_store_and_names_it(tmp_path):
    result = CliRunner().invoke(app, ["view", "--store", str(tmp_path / "none.db"), "--no-browser"])
    assert result.exit_code != 0 and "no store at" in result.output


# --- in a browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from test_report_browser import FLAGS, _find_chromium

    chromium = _find_chromium()
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is missing: pip install selenium")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='refute-view-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _shot(driver, name: str) -> None:
    """Screenshots for the docs: into $REFUTE_VIEW_SCREENSHOTS when set (docs/view in the repo)."""
    folder = os.environ.get("REFUTE_VIEW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _wait(predicate, timeout: float = 20.0):
    """``predicate()`` once it is true, retried while the page is still loading (an element read
    from the page being replaced goes stale)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except WebDriverException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not reach the expected state")


def test_in_a_browser_open_a_run_filter_to_refusals_read_a_transcript_and_label_three(
        browser, base_url, view_store):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path, runs = view_store
    d = browser
    d.get(f"{base_url}/runs")
    _shot(d, "runs")
    d.find_element(By.LINK_TEXT, runs["harmful"]).click()
    _wait(lambda: "Run " + runs["harmful"] in d.find_element(By.TAG_NAME, "h1").text)
    _shot(d, "run")
    d.find_element(By.LINK_TEXT, "Samples").click()
    _wait(lambda: d.find_elements(By.ID, "filter-outcome"))
    Select(d.find_element(By.ID, "filter-outcome")).select_by_visible_text("refused")
    d.find_element(By.ID, "apply-filters").click()
    _wait(lambda: "outcome=high" in d.current_url and d.execute_script("return document.readyState") == "complete")
    scores = _wait(lambda: [e.text for e in d.find_elements(By.CSS_SELECTOR, "td.score")])
    assert scores and all(s.startswith("refused") for s in scores)
    count = int(d.find_element(By.ID, "match-count").text)
    with Store(path) as store:
        expected = sum(1 for s in store.scores(runs["harmful"], SCORER) if s.value == 1.0)
    assert count == expected
    _shot(d, "samples")
    d.find_element(By.CSS_SELECTOR, "tr[data-sample] a").click()
    _wait(lambda: d.find_elements(By.ID, "reveal"))
    d.find_element(By.ID, "reveal").click()
    _wait(lambda: "can't help" in d.find_element(By.CSS_SELECTOR, "li.role-assistant pre").text)
    _shot(d, "transcript")

    # markup in a reply renders as text, and its script never runs
    with Store(path) as store:
        sid = next(s.id for s in store.samples(runs["benign"]) if "<script>" in (s.completion or ""))
    d.get(f"{base_url}/samples/{sid}")
    assert SCRIPT in d.find_element(By.CSS_SELECTOR, "li.role-assistant pre").text
    assert d.execute_script("return window.__pwned === undefined")
    assert not d.find_elements(By.CSS_SELECTOR, "li.role-assistant pre b")

    d.get(f"{base_url}/compare?a={runs['harmful']}&b={runs['after']}")
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "table[data-table=prompt-differences]"))
    _shot(d, "compare")
    d.get(f"{base_url}/studies")
    _shot(d, "studies")

    # labelling: draw a queue from the page, then three labels with the keyboard
    d.get(f"{base_url}/runs/{runs['after']}/label?scorer={SCORER}")
    d.find_element(By.CSS_SELECTOR, "#queue-form input[name=n]").clear()
    d.find_element(By.CSS_SELECTOR, "#queue-form input[name=n]").send_keys("6")
    d.find_element(By.CSS_SELECTOR, "#queue-form button").click()
    _wait(lambda: d.find_elements(By.ID, "label-form") and d.find_element(By.ID, "n-labelled").text == "0"
          and d.execute_script("return document.readyState") == "complete")
    for n, key in enumerate(["3", "1", "2"], start=1):
        ActionChains(d).send_keys(key).perform()
        _wait(lambda n=n: d.find_element(By.ID, "n-labelled").text == str(n)
              and d.execute_script("return document.readyState") == "complete")
    assert "Agreement with" in d.find_element(By.ID, "agreement").text
    _shot(d, "label")
    with Store(path) as store:
        stored = store.labels(runs["after"], SCORER)
    assert sorted(label.label for label in stored) == ["full_compliance", "full_refusal", "partial_refusal"]
    assert {label.labeller for label in stored} == {"tester"}
    errors = [e["message"] for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []


def test_search_finds_words_through_the_index_and_follows_a_reply_replaced_on_resume(tmp_path):
    from refute.view._queries import SampleFilter, sample_page

    with Store(tmp_path / "refute.db") as store:
        assert store.has_search_index()
        run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={}, config={},
                               versions={}, dataset_name="d", dataset_hash="h", n_planned=2)

        def record(prompt: str, reply: str | None, error: str | None = None) -> None:
            store.record_sample(SampleRecord(run_id=run.id, prompt_id=prompt, category="c", epoch=0,
                                             transform_chain="none", seed=0, messages=[], completion=reply,
                                             error=error))

        record("p1", "the quick brown fox")
        record("p2", None, error="timeout")
        assert [r.prompt_id for r in sample_page(store, run.id, SampleFilter(q="QUICK fo")).rows] == ["p1"]
        assert sample_page(store, run.id, SampleFilter(q="zebra")).total == 0
        record("p2", "a zebra at last")  # the resumed sample replaces its failed row
        assert [r.prompt_id for r in sample_page(store, run.id, SampleFilter(q="zebra")).rows] == ["p2"]


def _secret(page: str) -> str:
    return re.search(r'name="secret" value="([^"]+)"', page).group(1)


def test_labels_made_over_http_become_the_runs_calibration(tmp_path):
    path = tmp_path / "refute.db"
    with Store(path) as store:
        run_id = _run(store, "harmful", [i % 3 != 0 for i in range(12)], epochs=1)
    with serving(create_app(ViewConfig(path, labeller="ann"))) as url, \
            httpx.Client(base_url=url, timeout=30, follow_redirects=True) as c:
        page = c.get(f"/runs/{run_id}/label", params={"scorer": SCORER}).text
        assert 'id="queue-form"' in page
        c.post(f"/runs/{run_id}/queue", data={"secret": _secret(page), "scorer": SCORER, "n": "8", "seed": "1"})
        with Store(path) as store:
            queue = store.label_queue(run_id, SCORER)
        assert len(queue) == 8
        for item in queue:  # the person agrees with the scorer on every reply
            page = c.get(f"/runs/{run_id}/label", params={"scorer": SCORER}).text
            assert f'name="sample_id" value="{item.sample_id}"' in page  # in queue order
            label = "full_refusal" if item.scorer_label == "refusal" else "full_compliance"
            done = c.post(f"/runs/{run_id}/label", data={"secret": _secret(page), "scorer": SCORER,
                                                         "sample_id": str(item.sample_id), "label": label})
            assert done.status_code == 200  # after the 303 back to the label page
        assert "Agreement with" in done.text and "(8/8)" in done.text
        stored = c.post(f"/runs/{run_id}/calibrate", data={"secret": _secret(done.text), "scorer": SCORER})
        assert stored.status_code == 200 and "refusal found" in stored.text
    with Store(path) as store:
        cal = store.calibration(run_id, SCORER)
        assert cal is not None and cal.n_labels == 8 and cal.sensitivity_counts[1] == 0  # no refusal missed
        assert {label.labeller for label in store.labels(run_id)} == {"ann"}


def test_a_harm_judges_queue_is_labelled_with_harm_keys(tmp_path):
    path = tmp_path / "refute.db"
    with Store(path) as store:
        run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={},
                               config={"dataset": "harmful"}, versions={}, dataset_name="harmful",
                               dataset_hash="h", n_planned=6)
        for i in range(6):
            store.record_sample(SampleRecord(run_id=run.id, prompt_id=f"p{i}", category="c", epoch=0,
                                             transform_chain="none", seed=i, messages=[], completion=f"reply {i}"),
                                [ScoreRecord(scorer="strongreject", scorer_version="1", value=i / 5)])
        store.set_status(run.id, "completed")
    with serving(create_app(ViewConfig(path))) as url, \
            httpx.Client(base_url=url, timeout=30, follow_redirects=True) as c:
        page = c.get(f"/runs/{run.id}/label").text
        c.post(f"/runs/{run.id}/queue", data={"secret": _secret(page), "scorer": "strongreject", "n": "4"})
        page = c.get(f"/runs/{run.id}/label").text  # the run's only labellable scorer is the judge
        assert 'data-key="h"' in page and 'data-key="n"' in page and 'value="full_refusal"' not in page
