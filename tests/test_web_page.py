"""The web page (GET /) in a real headless Chromium against the real function on 127.0.0.1.

Needs Debian's `chromium` (/usr/bin/chromium) and Playwright for Python; Playwright's own
browser download is never used. `UPDATE_SCREENSHOT=1` rewrites docs/web_page.png (1280x900) and
docs/web_page_phone.png (390x844).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import requests
from PIL import Image

from devtools.videos import decode_clip, pan_clip

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
KODAK = ROOT.parent / "shared" / "data" / "eval" / "kodim01.png"
PAINTINGS = ROOT.parent / "shared" / "data" / "styles"  # the bundled styles' style images
BUNDLED = ROOT / "function" / "models"
SCREENSHOTS = {
    (1280, 900): ROOT / "docs" / "web_page.png",
    (390, 844): ROOT / "docs" / "web_page_phone.png",
}
SIZES = list(SCREENSHOTS)


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
        ("/styles/nope/painting.jpg", 404, "unknown_style"),
        ("/styles/..%2Fdots/painting.jpg", 404, "not_found"),
    ],
)
def test_thumbnail_errors_are_json(live_server, path, status, code):
    r = requests.get(live_server + path, timeout=10)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code


def mean_rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)


def test_styles_give_each_painting_and_it_is_the_style_image(live_server, style_path):
    styles = requests.get(live_server + "/styles", timeout=10).json()["styles"]
    assert {s["name"]: s["painting_url"] for s in styles} == {
        "dots": "styles/dots/painting.jpg",  # relative: resolves against /styles or the page
        "stripes": "styles/stripes/painting.jpg",
    }
    r = requests.get(f"{live_server}/styles/stripes/painting.jpg", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert "max-age=" in r.headers["Cache-Control"] and r.headers["ETag"]
    served = Image.open(io.BytesIO(r.content))
    assert served.format == "JPEG" and len(r.content) < 64_000
    with Image.open(style_path) as painting:
        assert served.size == painting.size  # 96x96: shrunk to 256 px at most, never enlarged
        # the painting the model was trained on, not a stylized sample (nor another style's)
        assert np.abs(mean_rgb(served) - mean_rgb(painting)).max() < 3
    dots = requests.get(f"{live_server}/styles/dots/painting.jpg", timeout=10)
    assert np.abs(mean_rgb(Image.open(io.BytesIO(dots.content))) - mean_rgb(served)).max() > 10
    again = requests.get(
        f"{live_server}/styles/stripes/painting.jpg",
        headers={"If-None-Match": r.headers["ETag"]},
        timeout=10,
    )
    assert again.status_code == 304 and again.content == b""


def without_painting(src: Path, dst: Path) -> None:
    """A copy of a model as exported before thumbnails existed: no painting_jpeg entry."""
    model = onnx.load(str(src))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "painting_jpeg"]
    assert len(kept) < len(model.metadata_props)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, dict(kept))
    onnx.save(model, str(dst))


def test_a_model_without_a_painting_says_null(make_client, model_dir, tmp_path):
    without_painting(model_dir / "dots.onnx", tmp_path / "dots.onnx")
    shutil.copy(model_dir / "stripes.fast.onnx", tmp_path)
    client = make_client(MODEL_DIR=str(tmp_path))
    styles = {s["name"]: s for s in client.get("/styles").json["styles"]}
    assert styles["dots"]["painting_url"] is None
    assert styles["stripes"]["painting_url"] == "styles/stripes/painting.jpg"
    r = client.get("/styles/dots/painting.jpg")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    assert "export.add_painting" in r.json["error"]["message"]
    assert client.get("/styles/dots/thumbnail.jpg").status_code == 200  # the page's fallback


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


# Every card picture has decoded and faded in (the styles are fetched after load).
CARDS_READY = """(() => {
    const imgs = [...document.querySelectorAll('.style .pic img')];
    return imgs.length > 0 && imgs.every(i => i.naturalWidth > 0 && i.classList.contains('ready'))
        && [...document.querySelectorAll('.style .pic')].every(p => p.classList.contains('ready'));
})()"""


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(live_server + "/")
    wait_until(page, CARDS_READY)
    assert page.locator(".style .pic img").count() == 2
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
    assert names == ["dots", "stripes", "own:painting"]  # the last: "Your painting"
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
        }  # and no max_size: the page shows and saves the API's full-size answer
    ]
    assert response.headers["x-style-model"] == "stripes/fast"

    page.wait_for_selector("#result", state="visible")
    assert natural_size(page, "#result") == size
    download = page.get_attribute("#download", "download")
    assert download == f"{path.stem}-stripes.jpg" and page.is_visible("#download")
    assert page.text_content("#status") == ""  # the busy indicator is gone
    assert page.is_enabled("#go")


def test_your_own_painting_is_sent_as_style_image(page, photo, style_path, clip_path):
    path, size = photo
    assert page.text_content("#own-title") == "Your painting"
    # Choosing the card opens the file picker; closing it empty goes back to the style before.
    with page.expect_file_chooser() as chooser:
        page.click(".style.own")
    chooser.value.set_files([])
    wait_until(page, "document.querySelector('input[value=dots]').checked")
    # Moving through the cards with the arrow keys passes it without a picker; Space opens it.
    choosers: list = []

    def listen(chooser) -> None:
        choosers.append(chooser)

    page.on("filechooser", listen)
    page.get_by_text("Stripes", exact=True).click()
    page.focus("input[value=stripes]")
    page.keyboard.press("ArrowRight")
    assert page.is_checked("#own")
    page.wait_for_timeout(300)
    assert choosers == []
    page.keyboard.press("Space")
    deadline = time.monotonic() + 5
    while not choosers:
        assert time.monotonic() < deadline, "Space on the card opened no file picker"
        page.wait_for_timeout(50)
    choosers[0].set_files([])
    page.remove_listener("filechooser", listen)
    wait_until(page, "document.querySelector('input[value=stripes]').checked")
    with page.expect_file_chooser() as chooser:
        page.click(".style.own")
    chooser.value.set_files(str(style_path))
    wait_until(page, "(i => i && i.naturalWidth > 0)(document.querySelector('#own-pic img'))")
    assert page.is_checked("#own") and page.text_content("#own-title") == style_path.name
    assert natural_size(page, "#own-pic img") == Image.open(style_path).size  # its thumbnail
    assert page.is_hidden("#preview") and page.is_hidden("#mix-field")

    page.set_input_files("#file", str(path))
    wait_until(page, "document.getElementById('original').naturalWidth > 0")
    page.evaluate(SPY_ON_FETCH)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Stylize").click()
    response = answer.value
    assert response.status == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-style-model"].startswith("style_image:")
    assert page.evaluate("window.sentForms") == [
        {"image": path.name, "style_image": style_path.name, "strength": "1",
         "preserve_color": "false"}  # no style and no arch: the API refuses either with it
    ]  # fmt: skip
    page.wait_for_selector("#result", state="visible")
    assert natural_size(page, "#result") == size
    assert page.get_attribute("#download", "download") == f"{path.stem}-your-painting.jpg"

    # Not for a video: the page says so and sends nothing.
    page.set_input_files("#file", str(clip_path))
    page.get_by_role("button", name="Stylize").click()
    assert "works with photos" in page.text_content("#error") and page.is_visible("#error")
    assert len(page.evaluate("window.sentForms")) == 1
    # Another style after it is a named style again.
    page.get_by_text("Stripes", exact=True).click()
    assert page.is_hidden("#error") and page.is_visible("#preview")


@pytest.fixture
def clip_path(tmp_path) -> Path:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(pan_clip(96, 64, frames=4, audio=None))
    return clip


# Keeps every blob the page makes a URL for: what a <video src="blob:..."> holds. (Its bytes
# come back through BLOB_BYTES: the page's policy rightly refuses fetch() of a blob: URL, and
# Chromium keeps no body of a request a test held and let go.)
SPY_ON_BLOBS = """() => {
    const create = URL.createObjectURL;
    window.blobs = {};
    URL.createObjectURL = (blob) => {
        const url = create(blob);
        window.blobs[url] = blob;
        return url;
    };
}"""
BLOB_BYTES = """async url => {
    const blob = window.blobs[url];
    return {type: blob.type, bytes: Array.from(new Uint8Array(await blob.arrayBuffer()))};
}"""

# Plays the result muted to its end (4 frames: a sixth of a second) and draws its last frame:
# the browser really decoded the MP4, not just read its header.
PLAY_RESULT = """async () => {
    const v = document.getElementById('result-video');
    v.muted = true;
    await v.play();
    while (!v.ended) await new Promise(r => setTimeout(r, 20));
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [v.videoWidth, v.videoHeight];
    const ctx = canvas.getContext('2d');
    ctx.drawImage(v, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
    return {ended: v.ended, time: v.currentTime, mean: sum / (3 * data.length / 4)};
}"""


def test_page_stylizes_an_uploaded_video(page, photo, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(pan_clip(96, 64, frames=4, audio=None))
    assert page.get_attribute("#file", "accept") == "image/*,video/mp4,video/quicktime,video/webm"
    page.set_input_files("#file", str(clip))
    wait_until(page, "document.getElementById('original-video').videoWidth > 0")
    assert page.is_hidden("#original")
    assert page.text_content("#original-size") == " · 96 × 64 px"
    page.get_by_text("Stripes").click()

    page.evaluate(SPY_ON_FETCH)
    page.evaluate(SPY_ON_BLOBS)
    held = []  # the answer waits until the wait state has been seen
    page.route("**/*", lambda r: held.append(r) if r.request.method == "POST" else r.continue_())
    page.get_by_role("button", name="Stylize").click()
    wait_until(page, "document.querySelector('#result-frame').ariaBusy === 'true'")
    assert page.is_visible("#spinner") and page.is_disabled("#go")
    assert page.text_content("#status") == (
        "Painting the video frame by frame: this can take a few minutes…"
    )
    assert page.text_content("#elapsed") == "0:00 elapsed"
    wait_until(page, "document.getElementById('elapsed').textContent === '0:01 elapsed'", 5)
    assert len(held) == 1
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        held[0].continue_()
    response = answer.value
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    assert response.headers["x-frames"] == "4"
    assert page.evaluate("window.sentForms") == [
        {"video": "clip.mp4", "style": "stripes", "arch": "fast", "strength": "1",
         "preserve_color": "false"}
    ]  # fmt: skip

    page.wait_for_selector("#result-video", state="visible")
    src = page.get_attribute("#result-video", "src")
    assert src.startswith("blob:")
    shown = page.evaluate(BLOB_BYTES, src)
    assert shown["type"] == "video/mp4"
    assert len(decode_clip(bytes(shown["bytes"])).frames) == 4  # the MP4 the API sent, whole
    assert page.is_hidden("#result") and page.is_hidden("#elapsed")
    assert page.text_content("#status") == "" and page.is_enabled("#go")
    played = page.evaluate(PLAY_RESULT)
    assert played["ended"] and played["time"] > 0 and played["mean"] > 10, played
    assert page.text_content("#result-figure figcaption") == "Stylized · 96 × 64 px · 4 frames"
    assert page.get_attribute("#download", "href") == src
    assert page.get_attribute("#download", "download") == "clip-stripes.mp4"
    assert page.is_visible("#download")

    # a photo next: shown and painted as an image again, the videos emptied
    page.unroute("**/*")
    page.set_input_files("#file", str(photo[0]))
    wait_until(page, "document.getElementById('original').naturalWidth > 0")
    assert page.is_hidden("#original-video") and page.is_hidden("#result-video")
    assert page.get_attribute("#result-video", "src") is None
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Stylize").click()
    assert answer.value.headers["content-type"] == "image/jpeg"
    page.wait_for_selector("#result", state="visible")
    assert natural_size(page, "#result") == photo[1] and page.is_hidden("#result-video")
    assert page.get_attribute("#download", "download") == f"{photo[0].stem}-stripes.jpg"


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


# What a card's <img> really shows: its decoded pixels' mean colour, drawn through a canvas.
CARD_PIXELS = """img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += data[i + c];
    const n = data.length / 4;
    return {src: img.getAttribute('src'), size: [img.naturalWidth, img.naturalHeight],
            mean: sum.map(v => v / n)};
}"""


def card_pictures(page) -> dict[str, dict]:
    """Each card's picture by style name: its src, natural size and mean colour."""
    names = page.eval_on_selector_all(
        ".style:not(.own) input[name=style]", "els => els.map(e => e.value)"
    )
    pictures = page.eval_on_selector_all(
        ".style:not(.own) .pic img", f"imgs => imgs.map({CARD_PIXELS})"
    )
    assert len(names) == len(pictures)  # one picture a card
    return dict(zip(names, pictures, strict=True))


def check_cards_show_the_served_paintings(page, url: str) -> dict[str, Image.Image]:
    """Every card shows its painting as GET /styles/NAME/painting.jpg serves it; returns those."""
    styles = {s["name"]: s for s in requests.get(url + "/styles", timeout=10).json()["styles"]}
    served = {}
    for name, pic in card_pictures(page).items():
        assert pic["src"] == styles[name]["painting_url"], name
        r = requests.get(f"{url}/{pic['src']}", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
        served[name] = Image.open(io.BytesIO(r.content))
        assert served[name].format == "JPEG"
        assert tuple(pic["size"]) == served[name].size, name
        assert np.abs(np.array(pic["mean"]) - mean_rgb(served[name])).max() < 2, name
    return served


def test_cards_show_the_paintings(page, live_server):
    served = check_cards_show_the_served_paintings(page, live_server)
    assert set(served) == {"dots", "stripes"}
    # The sample photo in the chosen style waits in the empty result frame.
    wait_until(page, "document.getElementById('preview').classList.contains('ready')")
    assert page.get_attribute("#preview", "src") == "styles/dots/thumbnail.jpg"
    page.get_by_text("Stripes").click()
    assert page.get_attribute("#preview", "src") == "styles/stripes/thumbnail.jpg"


def test_cards_fall_back_to_the_sample_without_a_painting(browser, live_server):
    """A model exported before painting thumbnails: /styles says null and the card shows the
    style's sample photo instead of a grey box."""
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    page = context.new_page()

    def no_paintings(route):
        body = route.fetch().json()
        for style in body["styles"]:
            style["painting_url"] = None
        route.fulfill(json=body)

    page.route("**/styles", no_paintings)
    try:
        page.goto(live_server + "/")
        wait_until(page, CARDS_READY)
        pictures = card_pictures(page)
        assert {n: p["src"] for n, p in pictures.items()} == {
            "dots": "styles/dots/thumbnail.jpg",
            "stripes": "styles/stripes/thumbnail.jpg",
        }
        assert all(tuple(p["size"]) == (192, 128) for p in pictures.values())
    finally:
        context.close()


# --- the bundled styles at a desktop and a phone size ------------------------------------------


@pytest.fixture(scope="module")
def bundled_server(tmp_path_factory):
    """The real function on the bundled styles (function/models): real titles, real paintings."""
    from devtools.server import function_server
    from tests.conftest import FUNCTION_DIR

    log = tmp_path_factory.mktemp("bundled_server") / "server.log"
    with function_server(FUNCTION_DIR / "main.py", log, {"MODEL_DIR": str(BUNDLED)}) as url:
        yield url


IN_VIEW = """sel => {
    const box = document.querySelector(sel).getBoundingClientRect();
    return box.height > 0 && box.top >= -1 && box.bottom <= window.innerHeight + 1;  // sub-pixels
}"""


def in_view(page, selector: str) -> bool:
    return bool(page.evaluate(f"({IN_VIEW})({json.dumps(selector)})"))


def wait_until_still(page) -> None:
    """Until a smooth scroll has come to rest."""
    last = None
    for _ in range(100):
        y = page.evaluate("window.scrollY")
        if y == last:
            return
        last = y
        time.sleep(0.1)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_bundled_styles_page(browser, bundled_server, photo, size, tmp_path):
    """Each card shows its painting, titles end in an ellipsis instead of overflowing, and on
    a phone pressing Stylize brings the busy state and then the result into view."""
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    # Hold the stylize answer until told: the busy state stays on screen while it is checked.
    held = []
    page.route("**/*", lambda r: held.append(r) if r.request.method == "POST" else r.continue_())
    try:
        page.goto(bundled_server + "/")
        wait_until(page, CARDS_READY)
        served = check_cards_show_the_served_paintings(page, bundled_server)
        assert len(served) == 11  # every bundled style has its card
        for name, thumb in served.items():
            assert max(thumb.size) == 256, name  # the embedded thumbnail, not a 192x128 sample
            if PAINTINGS.exists():  # the painting itself, as in ../shared
                with Image.open(PAINTINGS / f"{name}.jpg") as painting:
                    painting.draft("RGB", (512, 512))
                    assert np.abs(mean_rgb(painting) - mean_rgb(thumb)).max() < 4, name
        check_titles(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll

        parrots = KODAK.with_name("kodim23.png")  # the README's photo
        page.set_input_files("#file", str(parrots if parrots.exists() else photo[0]))
        wait_until(page, "document.getElementById('original').naturalWidth > 0")
        # On a phone the result frame starts below the screen; on a desktop it is in view.
        assert in_view(page, "#result-frame") == (width >= 1000)
        page.get_by_role("button", name="Stylize").click()
        wait_until(page, "document.querySelector('#result-frame').ariaBusy === 'true'")
        assert page.is_visible("#spinner") and page.is_hidden("#result-empty")
        wait_until(page, f"({IN_VIEW})('#spinner') && ({IN_VIEW})('#result-frame')", 10)
        assert len(held) == 1 and page.get_attribute("#result-frame", "aria-busy") == "true"
        held[0].continue_()
        page.wait_for_selector("#result", state="visible")
        # the result (full size, as the API sent it) and its Download button come into view
        wait_until(page, f"({IN_VIEW})('#result') && ({IN_VIEW})('#download')", 10)
        wait_until_still(page)
        assert page.is_hidden("#spinner")
        caption = page.text_content("#result-figure figcaption")
        w, h = natural_size(page, "#result")
        assert caption == f"Stylized · {w} × {h} px"
        time.sleep(0.3)  # the pictures' fade-in
        png = page.screenshot()
        (tmp_path / f"web_page_{width}x{height}.png").write_bytes(png)
        if os.environ.get("UPDATE_SCREENSHOT") == "1" and KODAK.exists():
            save_screenshot(png, SCREENSHOTS[size])
    finally:
        context.close()


def check_titles(page) -> None:
    """Each title fits its card: at most two lines, cut with an ellipsis, the whole title in
    the card's tooltip; the two long ones really are cut."""
    titles = page.eval_on_selector_all(
        ".style:not(.own)",
        """labels => labels.map(label => {
            const t = label.querySelector('.title');
            const css = getComputedStyle(t);
            const card = label.getBoundingClientRect(), box = t.getBoundingClientRect();
            return {name: label.querySelector('input').value, text: t.textContent,
                    tooltip: label.title, scrollWidth: t.scrollWidth, clientWidth: t.clientWidth,
                    scrollHeight: t.scrollHeight, clientHeight: t.clientHeight,
                    lineHeight: parseFloat(css.lineHeight), clamp: css.webkitLineClamp,
                    overflow: css.overflow, ellipsis: css.textOverflow,
                    inside: box.left >= card.left && box.right <= card.right
                            && box.bottom <= card.bottom};
        })""",
    )
    cut = set()
    for t in titles:
        assert t["scrollWidth"] <= t["clientWidth"], t
        assert t["clientHeight"] <= 2 * t["lineHeight"] + 1, t
        assert (t["clamp"], t["overflow"], t["ellipsis"]) == ("2", "hidden", "ellipsis"), t
        assert t["inside"], t
        assert t["tooltip"].startswith(t["text"] + ", "), t  # title, artist
        if t["scrollHeight"] > t["clientHeight"] + 1:
            cut.add(t["name"])
    assert {"udnie", "grande_jatte"} <= cut


def save_screenshot(png: bytes, path: Path) -> None:
    """Keep the tracked PNG small: 256 colours are plenty for a UI with two photos."""
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(256)
    path.parent.mkdir(exist_ok=True)
    img.save(path, optimize=True)


def test_the_mix_slider_sends_a_mix_of_the_chosen_style_and_a_second(
    browser, live_mix_server, photo_dir
):
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(live_mix_server + "/")
        wait_until(page, CARDS_READY)
        page.get_by_text("Stripes").click()  # a single-style model: nothing to mix it with
        assert not page.is_visible("#mix-field")
        page.get_by_text("Waves").click()
        assert page.is_visible("#mix-field") and page.is_disabled("#mix")
        options = page.eval_on_selector_all("#mix-with option", "os => os.map(o => o.value)")
        assert options == ["", "checks"]  # its network's other style
        page.select_option("#mix-with", "checks")
        page.fill("#mix", "0.25")
        assert page.text_content("#mix-value") == "25%"
        page.set_input_files("#file", str(photo_dir / "photo_2.jpg"))
        page.evaluate(SPY_ON_FETCH)
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Stylize").click()
        assert answer.value.status == 200
        assert answer.value.headers["x-style-model"] == "waves:0.75,checks:0.25/fast"
        page.wait_for_selector("#result", state="visible")
        (sent,) = page.evaluate("window.sentForms")
        assert sent["style"] == "waves:0.75,checks:0.25"
    finally:
        context.close()
