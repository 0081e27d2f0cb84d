"""``rnnfast viz`` and ``rnnfast.viz.render_page``: the page is self-contained and carries the
search's units, bad input is one line and exit 2, and a real headless browser (the system's
Chromium) renders it without a console message: a screenshot with the page's colours in it, a
DOM with every character's span and the picker's options, and 100k characters in a few
seconds (the time printed).  The browser tests skip where Chromium is not installed."""

import base64
import html
import json
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from rnnfast import inspect, viz
from rnnfast.__main__ import main

TEXT = ("def f(x):\n    return x + 1  # add one\n\nclass A:\n    s = 'it' + \"is\"\n" * 60)[:3000]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (CI installs the system package where it can)"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(a checkpoint trained for 20 steps on TEXT, the text file)."""
    root = tmp_path_factory.mktemp("viz")
    data = root / "input.txt"
    data.write_text(TEXT, encoding="utf-8")
    argv = ["train", "--data", str(data), "--hidden-size", "16", "--num-layers", "2",
            "--batch-size", "4", "--seq-length", "8", "--steps", "20", "--val-every", "10",
            "--out", str(root / "run"), "--sample-length", "0"]  # fmt: skip
    assert main(argv) == 0
    return root / "run", data


def page_data(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="rnnfast-data">(.*?)</script>', page,
                     re.S)  # fmt: skip
    return json.loads(blob.group(1))


def outside_the_data(page: str) -> str:
    return re.sub(r'(<script type="application/json"[^>]*>).*?(</script>)', r"\1\2", page,
                  flags=re.S)  # fmt: skip


def assert_self_contained(page: str) -> None:
    """Nothing the page would fetch: no src or href at all, no CSS url() or @import, no
    address anywhere outside the data (the text shown may hold any)."""
    markup = outside_the_data(page)
    assert not re.search(r"\b(src|href)\s*=", markup, re.I)
    assert "url(" not in markup and "@import" not in markup
    assert "http" not in markup and "//" not in markup


# -- the command ------------------------------------------------------------------------------


def test_viz_writes_a_page_of_the_best_unit(run, tmp_path, capsys):
    checkpoint, data = run
    out = tmp_path / "page.html"
    assert main(["viz", str(checkpoint), "--text", str(data), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "units that track quotes (correlation over 3,000 characters):" in stdout
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    data_ = page_data(page)
    assert data_["text"] == TEXT and data_["feature"] == "quotes" and len(data_["units"]) == 10
    best = data_["units"][data_["selected"]]
    assert f"coloured by unit {best['layer']}:{best['unit']}" in stdout
    scores = [abs(u["score"]) for u in data_["units"]]
    assert scores == sorted(scores, reverse=True)


def test_viz_options(run, tmp_path, capsys):
    checkpoint, data = run
    out = tmp_path / "page.html"
    out.write_text("old")
    argv = ["viz", str(checkpoint), "--text", str(data), "--out", str(out), "--unit", "1:15",
            "--regex", r"\(", "--max-chars", "500", "--overwrite",
            "--dtype", "float64"]  # fmt: skip
    assert main(argv) == 0
    data_ = page_data(out.read_text(encoding="utf-8"))
    chosen = data_["units"][data_["selected"]]
    assert (chosen["layer"], chosen["unit"]) == (1, 15) and len(data_["text"]) == 500
    assert data_["feature"] == r"regex /\(/"
    assert "showing the first 500 of 3,000 characters" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--unit", "2:0"], "unit: layer 2 out of range: the model has 2 layer(s), 0 .. 1"),
    (["--unit", "0:16"], "unit: index 16 out of range: a layer has 16 units, 0 .. 15"),
    (["--unit", "zero"], "--unit: expected LAYER:INDEX, e.g. 0:12, got 'zero'"),
    (["--unit=-1:2"], "--unit: expected LAYER:INDEX"),
    (["--feature", "strings"], "--feature: expected one of quotes, brackets, line_position"),
    (["--regex", "[a-"], "regex '[a-': does not compile: unterminated character set"),
    (["--regex", "Q"], "feature: regex /Q/ is constant over the text"),
    (["--text", "{tmp}/missing.txt"], "no such text file"),
    (["--text", "{tmp}/other.txt"], "text: 2 character(s) not in the model's vocabulary: 'X', "
                                    "'\u00e9'"),
    (["--text", "{tmp}/empty.txt"], "is empty"),
    (["--out", "{tmp}/exists.html"], "exists: pass --overwrite or another --out"),
    (["--out", "{tmp}/no/such/dir/page.html"], "No such file or directory"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(run, tmp_path, capsys, extra, message):
    checkpoint, data = run
    (tmp_path / "other.txt").write_text("def X\u00e9", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "exists.html").write_text("keep")
    argv = ["viz", str(checkpoint), "--text", str(data), "--out", str(tmp_path / "p.html")]
    argv += [a.format(tmp=tmp_path) for a in extra]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "exists.html").read_text() == "keep"


# -- the page ---------------------------------------------------------------------------------


MARKUP = "</script><b>x</b> \U0001f600 \u00e9 <!-- "  # what a page must keep from its markup


def tiny_activations(text=TEXT, hidden_size=8, num_layers=2):
    vocab = rnnfast.Vocab.from_text(TEXT + MARKUP)
    model = rnnfast.CharLM(vocab, hidden_size=hidden_size, num_layers=num_layers, seed=0)
    return inspect.activations(model, text, gates=False)


def test_the_page_carries_the_search_and_every_character():
    acts = tiny_activations()
    page = viz.render_page(acts, unit=(0, 7), feature="brackets", title="<mine>")
    assert_self_contained(page)
    assert "<title>&lt;mine&gt;</title>" in page
    data_ = page_data(page)
    searched = inspect.search_units(acts, "brackets", top=10)
    listed = [(u["layer"], u["unit"]) for u in data_["units"]]
    expected = [(u.layer, u.unit) for u in searched]
    assert listed == (expected if (0, 7) in expected else [(0, 7), *expected])
    assert listed[data_["selected"]] == (0, 7)
    values = np.frombuffer(base64.b64decode(data_["units"][0]["values"]), np.int8)
    assert len(values) == len(TEXT) and np.abs(values).max() == 127
    loss = np.frombuffer(base64.b64decode(data_["loss"]), "<f4")
    np.testing.assert_allclose(loss, acts.loss, rtol=1e-6)


def test_the_page_escapes_what_would_end_its_script_and_keeps_any_character():
    text = MARKUP
    acts = tiny_activations(text)
    page = viz.render_page(acts, feature=np.arange(len(text)), max_chars=len(text))
    assert page.count("</script>") == 3  # the error hook's, the data's and the script's
    assert page_data(page)["text"] == text


def test_render_page_refuses_bad_input():
    acts = tiny_activations()
    with pytest.raises(ValueError, match="unit: layer 2 out of range"):
        viz.render_page(acts, unit=(2, 0))
    with pytest.raises(ValueError, match="text: expected the 3000 characters"):
        viz.render_page(acts, "abc")
    with pytest.raises(ValueError, match="max_chars: expected a positive integer"):
        viz.render_page(acts, max_chars=0)


# -- in a real browser ------------------------------------------------------------------------


def chromium(tmp_path, page: Path, *flags) -> tuple[subprocess.CompletedProcess, float]:
    """Chromium headless on ``page``, its console on stderr; (the process, its seconds)."""
    argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--window-size=1200,900", *flags,
            page.resolve().as_uri()]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return done, time.perf_counter() - start


def tag(dom: str, name: str) -> str:
    """The opening tag of the first ``name`` element of a dumped DOM, with its attributes."""
    return re.search(rf"<{name}\b[^>]*>", dom).group(0)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console (an uncaught error included)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def png_pixels(path: Path) -> np.ndarray:
    """The pixels (height, width, channels) of an 8-bit RGB or RGBA PNG, decoded with zlib and
    NumPy (the five row filters of the PNG standard)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    assert depth == 8 and colour in (2, 6), (depth, colour)
    c = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, -1)
    rows = np.zeros((height + 1, width * c), np.uint8)  # rows[0]: the zero row above the image
    for y in range(height):
        kind, line, up = raw[y, 0], raw[y, 1:], rows[y]
        if kind == 0:
            rows[y + 1] = line
        elif kind == 1:
            rows[y + 1] = np.cumsum(line.reshape(width, c), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:
            rows[y + 1] = line + up
        else:  # average and Paeth depend on the byte to the left: one at a time
            out, above = [0] * (width * c), up.tolist()
            for x, value in enumerate(line.tolist()):
                left = out[x - c] if x >= c else 0
                if kind == 3:
                    predicted = (left + above[x]) // 2
                else:
                    corner = above[x - c] if x >= c else 0
                    p = left + above[x] - corner
                    pa, pb, pc = abs(p - left), abs(p - above[x]), abs(p - corner)
                    predicted = left if pa <= pb and pa <= pc else above[x] if pb <= pc else corner
                out[x] = (value + predicted) & 0xFF
            rows[y + 1] = out
    return rows[1:].reshape(height, width, c)


def palette_colours(page: str) -> dict[tuple[int, int, int], int]:
    """The page's colour classes: rgb -> bucket (the white one left out)."""
    found = re.findall(r"\.q(\d+)\{background:rgb\((\d+),(\d+),(\d+)\)", page)
    return {(int(r), int(g), int(b)): int(q) for q, r, g, b in found if (r, g, b) != ("255",) * 3}


def colours_shown(png: Path, page: str) -> tuple[int, float]:
    """(how many of the page's colour classes the screenshot shows, the share of its pixels in
    one of them)."""
    pixels = png_pixels(png)[..., :3].reshape(-1, 3).astype(np.int64)
    packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    palette = np.array([(r << 16) | (g << 8) | b for r, g, b in palette_colours(page)])
    hits = np.isin(packed, palette)
    return len(np.intersect1d(packed[hits], palette)), float(hits.mean())


@pytest.fixture(scope="module")
def page_file(run, tmp_path_factory) -> Path:
    checkpoint, data = run
    out = tmp_path_factory.mktemp("page") / "page.html"
    assert main(["viz", str(checkpoint), "--text", str(data), "--out", str(out)]) == 0
    return out


@needs_browser
def test_the_browser_shows_the_page_without_a_console_message(page_file, tmp_path):
    shot = tmp_path / "shot.png"
    done, _ = chromium(tmp_path, page_file, f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    assert png_pixels(shot).shape[:2] == (900, 1200)
    count, share = colours_shown(shot, page_file.read_text(encoding="utf-8"))
    assert count >= 5 and share > 0.02, (count, share)  # the text, coloured by the unit


@needs_browser
def test_the_script_builds_every_span_and_the_picker(page_file, tmp_path):
    done, _ = chromium(tmp_path, page_file, "--dump-dom")
    assert done.returncode == 0 and console_messages(done.stderr) == []
    dom = done.stdout
    assert "data-errors" not in tag(dom, "html")
    assert f'data-rendered="{len(TEXT)}"' in tag(dom, "body")
    text_box = re.search(r'<div id="text">(.*?)</div>', dom, re.S).group(1)
    spans = re.findall(r'<span class="q(\d+)">', text_box)
    assert len(spans) == len(TEXT) and len(set(spans)) >= 5
    options = re.findall(r'<option value="\d+">layer (\d), unit (\d+):  r = ([+-]\d\.\d{3})', dom)
    assert len(options) == 10


# Appended to a page: the picker switched to its second unit, then the loss view, then a hover
# on character 5, each step's classes (q0 .. q40 as numbers) written on the body.
INTERACTION = """<script>
(function () {
  var spans = document.getElementById("text").children, body = document.body;
  function classes(name) {
    var out = [];
    for (var i = 0; i < spans.length; i++) out.push(spans[i].className.slice(1));
    body.setAttribute(name, out.join(" "));
  }
  classes("data-first");
  var picker = document.getElementById("unit");
  picker.value = "1";
  picker.dispatchEvent(new Event("change"));
  classes("data-second");
  document.querySelector("input[value=loss]").click();
  classes("data-loss");
  spans[5].dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
})();
</script>
</body>"""


def js_round(x):
    return np.floor(np.asarray(x) + 0.5).astype(int)  # Math.round: halves up


@needs_browser
def test_the_picker_the_loss_view_and_the_tooltip(tmp_path):
    """Each view's colours are the buckets of the data it shows; the tooltip lists the five
    likeliest next characters with their probabilities."""
    acts = tiny_activations(TEXT[:300])
    page = viz.render_page(acts, feature="brackets")
    path = tmp_path / "page.html"
    path.write_text(page.replace("</body>", INTERACTION), encoding="utf-8")
    done, _ = chromium(tmp_path, path, "--dump-dom")
    assert done.returncode == 0 and console_messages(done.stderr) == []
    body = tag(done.stdout, "body")
    data_, B = page_data(page), viz.BUCKETS

    def shown(name):
        return [int(q) for q in re.search(rf'{name}="([\d ]+)"', body).group(1).split()]

    for name, unit in (("data-first", 0), ("data-second", 1)):
        values = np.frombuffer(base64.b64decode(data_["units"][unit]["values"]), np.int8) * 1.0
        assert shown(name) == list(B + js_round(values * B / 127)), name
    loss = np.minimum(np.frombuffer(base64.b64decode(data_["loss"]), "<f4") / np.log(len(
        acts.chars)), 1)  # fmt: skip
    assert shown("data-loss") == [B, *(B + js_round(loss * B))]
    tip = re.search(r'<div id="tip"[^>]*>(.*?)</div>\s*<script', done.stdout, re.S).group(1)
    tip = html.unescape(re.sub(r"<[^>]+>", "", tip))
    visible = {"\n": "\u23ce", " ": "\u2423", "\t": "\u21e5"}  # how the tooltip shows them
    for candidate, p in zip(acts.top_ids[5], acts.top_probs[5], strict=True):
        ch = acts.chars[candidate]
        assert f"'{visible.get(ch, ch)}' {p:.3f}" in tip, tip


@needs_browser
def test_the_checks_see_an_error_and_a_blank_page(tmp_path):
    """Negative controls: a page whose script throws is caught by the console check and its
    error hook; a screenshot of a blank page shows none of the colours."""
    page = viz.render_page(tiny_activations(TEXT[:200]), feature="brackets")
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace('"use strict";', '"use strict"; undefinedName();'))
    done, _ = chromium(tmp_path, broken, "--dump-dom")
    assert any("Uncaught ReferenceError" in m for m in console_messages(done.stderr))
    assert 'data-errors="Uncaught ReferenceError' in tag(done.stdout, "html")
    assert "data-rendered" not in tag(done.stdout, "body")
    blank = tmp_path / "blank.html"
    blank.write_text(page.replace('"use strict";', '"use strict"; return;'))
    shot = tmp_path / "blank.png"
    assert chromium(tmp_path, blank, f"--screenshot={shot}")[0].returncode == 0
    assert colours_shown(shot, page) == (0, 0.0)


@needs_browser
def test_a_page_of_100k_characters(tmp_path, record_property):
    """The size the command shows by default: every span built and coloured; the times are
    printed (pytest -s) and recorded, not asserted (speed is no test's business)."""
    text = (TEXT * 34)[:100_000]
    out = tmp_path / "big.html"
    out.write_text(viz.render_page(tiny_activations(text, 32)), encoding="utf-8")
    done, seconds = chromium(tmp_path, out, "--dump-dom")
    assert done.returncode == 0 and console_messages(done.stderr) == []
    body = tag(done.stdout, "body")
    assert 'data-rendered="100000"' in body
    ready = float(re.search(r'data-ready-ms="([\d.]+)"', body).group(1))
    built = float(re.search(r'data-render-ms="([\d.]+)"', body).group(1))
    record_property("ready_ms", ready)
    print(f"\n100k characters, {out.stat().st_size / 1e6:.1f} MB: the script done {ready:.0f} ms "
          f"after navigation began ({built:.0f} ms building and colouring), chromium "
          f"--dump-dom {seconds:.1f} s in all")  # fmt: skip
