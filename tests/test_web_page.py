"""The web page (GET /) in a real headless Chromium against the real function on 127.0.0.1.

Needs Debian's `chromium` (/usr/bin/chromium) and Playwright for Python; Playwright's own
browser download is never used. `UPDATE_SCREENSHOT=1` rewrites docs/web_page.png.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
KODAK = ROOT.parent / "shared" / "data" / "eval" / "kodim01.png"
SCREENSHOT = ROOT / "docs" / "web_page.png"


# --- the routes the page relies on (plain HTTP, no browser) ---------------------------------


def test_get_root_serves_the_page_and_post_root_stays_the_api(live_server):
    r = requests.get(live_server + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "max-age=" in r.headers["Cache-Control"]
    assert "<title>styleserve" in r.text
    # no external scripts, styles or fonts: the page must work offline
    assert "http://" not in r.text and "https://" not in r.text
    r = requests.put(live_server + "/", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert requests.head(live_server + "/", timeout=10).status_code == 200


def test_thumbnails_are_small_stylized_samples(live_server):
    first = requests.get(live_server + "/styles/stripes/thumbnail.jpg", timeout=30)
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/jpeg"
    assert "max-age=" in first.headers["Cache-Control"]
    assert Image.open(io.BytesIO(first.content)).size == (192, 128)
    other = requests.get(live_server + "/styles/dots/thumbnail.jpg", timeout=30)
    assert other.content != first.content  # each style renders its own
    again = requests.get(live_server + "/styles/stripes/thumbnail.jpg", timeout=30)
    assert again.content == first.content  # cached per instance


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/styles/nope/thumbnail.jpg", 404, "unknown_style"),
        ("/styles/..%2F..%2Fmain/thumbnail.jpg", 404, "not_found"),  # a '/' is never a name
        ("/styles//thumbnail.jpg", 404, "not_found"),
        ("/styles/dots/thumbnail.png", 404, "not_found"),
    ],
)
def test_thumbnail_errors_are_json(live_server, path, status, code):
    r = requests.get(live_server + path, timeout=10)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code


# --- the page in a browser --------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: apt-get install -y chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python missing: pip install playwright"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(live_server + "/")
    # the styles are fetched after load; wait until both thumbnails have really decoded
    wait_until(page, "[...document.querySelectorAll('.style img')].every(i => i.naturalWidth)")
    assert page.locator(".style img").count() == 2
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def photo(photo_dir) -> tuple[Path, tuple[int, int]]:
    """A Kodak photo when ../shared has one (only read), else a generated photo; (path, size)."""
    path = KODAK if KODAK.exists() else photo_dir / "photo_0.jpg"
    with Image.open(path) as img:
        return path, img.size


SPY_ON_FETCH = """() => {
    const fetch = window.fetch;
    window.sentForms = [];
    window.fetch = (url, init) => {
        if (init && init.body instanceof FormData) {
            const fields = [...init.body].map(([k, v]) => [k, typeof v === "string" ? v : v.name]);
            window.sentForms.push(Object.fromEntries(fields));
        }
        return fetch(url, init);
    };
}"""


def wait_until(page, expression: str, timeout_s: float = 30) -> None:
    """Poll a JS expression from Python: page.wait_for_function evaluates strings with eval(),
    which the page's Content-Security-Policy rightly refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def natural_size(page, selector: str) -> tuple[int, int]:
    return tuple(page.eval_on_selector(selector, "i => [i.naturalWidth, i.naturalHeight]"))


def test_page_stylizes_an_uploaded_photo(page, photo):
    path, size = photo
    names = page.eval_on_selector_all("input[name=style]", "els => els.map(e => e.value)")
    assert names == ["dots", "stripes"]
    assert page.is_checked("input[value=dots]")  # the instance's default style

    page.set_input_files("#file", str(path))
    wait_until(page, "document.getElementById('original').naturalWidth > 0")
    assert natural_size(page, "#original") == size
    page.get_by_text("Stripes").click()
    page.eval_on_selector(
        "#strength", "e => { e.value = '0.8'; e.dispatchEvent(new Event('input')); }"
    )
    assert page.text_content("#strength-value") == "80%"
    page.get_by_label("Keep the photo's colours").check()

    # Chromium does not report multipart bodies that hold a file, so record what the page
    # hands to fetch() to see that every option reaches the request.
    page.evaluate(SPY_ON_FETCH)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Stylize").click()
    response = answer.value
    assert response.status == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.request.url == page.url  # a relative URL: POST / wherever the page is
    sent = page.evaluate("window.sentForms")
    assert sent == [
        {
            "image": path.name,
            "style": "stripes",
            "arch": "fast",  # stripes has both archs; "Best quality" starts off on a CPU
            "strength": "0.8",
            "preserve_color": "true",
        }
    ]
    assert response.headers["x-style-model"] == "stripes/fast"

    page.wait_for_selector("#result", state="visible")
    assert natural_size(page, "#result") == size
    download = page.get_attribute("#download", "download")
    assert download == f"{path.stem}-stripes.jpg" and page.is_visible("#download")
    assert page.text_content("#status") == ""  # the busy indicator is gone
    assert page.is_enabled("#go")


def test_page_shows_the_api_error_for_a_non_image(page, tmp_path, live_server):
    note = tmp_path / "notes.txt"
    note.write_text("this is not a photo\n")
    expected = requests.post(
        live_server, files={"image": (note.name, note.read_bytes(), "text/plain")}, timeout=10
    ).json()["error"]["message"]

    page.set_input_files("#file", str(note))
    page.get_by_role("button", name="Stylize").click()
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible")
    assert alert.text_content() == expected
    assert page.is_hidden("#result") and page.is_hidden("#download")


def test_dropping_a_photo_selects_it(page, photo_dir):
    data = (photo_dir / "photo_1.jpg").read_bytes()
    transfer = page.evaluate_handle(
        """bytes => {
            const t = new DataTransfer();
            t.items.add(new File([new Uint8Array(bytes)], 'dropped.jpg', {type: 'image/jpeg'}));
            return t;
        }""",
        list(data),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert page.text_content("#file-name") == "dropped.jpg"
    assert page.is_enabled("#go")
    wait_until(page, "document.getElementById('original').naturalWidth > 0")
    with Image.open(photo_dir / "photo_1.jpg") as img:
        assert natural_size(page, "#original") == img.size


def test_best_quality_asks_for_johnson_where_a_style_has_both(page, photo_dir):
    page.set_input_files("#file", str(photo_dir / "photo_2.jpg"))
    page.evaluate(SPY_ON_FETCH)
    page.get_by_label("Best quality (slower)").check()
    for name, model in (("Stripes", "stripes/johnson"), ("Dots", "dots/johnson")):
        page.get_by_text(name).click()
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Stylize").click()
        assert answer.value.status == 200 and answer.value.headers["x-style-model"] == model
        page.wait_for_selector("#result", state="visible")
    stripes, dots = page.evaluate("window.sentForms")
    assert stripes["arch"] == "johnson"
    assert "arch" not in dots  # dots has one arch: the server's default for it


def save_screenshot(png: bytes, path: Path) -> None:
    """Keep the tracked PNG small: 256 colours are plenty for a UI with two photos."""
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(256)
    path.parent.mkdir(exist_ok=True)
    img.save(path, optimize=True)


@pytest.mark.skipif(
    os.environ.get("UPDATE_SCREENSHOT") != "1" or not KODAK.exists(),
    reason="rewrites docs/web_page.png on the bundled styles; set UPDATE_SCREENSHOT=1",
)
def test_screenshot_of_the_bundled_styles(browser, tmp_path):
    """The README's picture: the bundled styles, a Kodak photo, The Starry Night."""
    from devtools.server import function_server
    from tests.conftest import FUNCTION_DIR

    env = {"MODEL_DIR": str(FUNCTION_DIR / "models")}
    with function_server(FUNCTION_DIR / "main.py", tmp_path / "server.log", env) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        wait_until(page, "[...document.querySelectorAll('.style img')].every(i => i.naturalWidth)")
        page.set_input_files("#file", str(KODAK.with_name("kodim23.png")))
        page.get_by_text("The Starry Night").click()
        page.get_by_role("button", name="Stylize").click()
        page.wait_for_selector("#result", state="visible")
        save_screenshot(page.screenshot(full_page=True), SCREENSHOT)
        context.close()
