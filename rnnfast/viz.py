"""A text coloured by what a model's units do there, as one self-contained HTML page.

    acts = rnnfast.inspect.activations(model, text, gates=False)
    page = rnnfast.viz.render_page(acts, feature="quotes")      # the search's best unit
    Path("page.html").write_text(page, encoding="utf-8")

The page needs nothing but a browser: its CSS and script are inline and its data is one JSON
blob in a ``<script type="application/json">`` tag (arrays as base64 of little-endian typed
arrays), so it opens offline and can be mailed.  The script builds one span per character once
and recolours them by class: a unit's h on a blue-white-red scale (blue its lowest value over
the text, red its highest: a weak unit shows as well as a saturated one), or the loss of
each character (white 0 nats to red ln V: no better than a uniform guess), with the unit picker
fed by the unit search and, on hover, the five likeliest next characters.
"""

from __future__ import annotations

import base64
import html
import json
import math

import numpy as np

from .inspect import Activations, UnitScore, check_unit, correlations, describe, search_units
from .validation import check_int

BUCKETS = 20  # colours on each side of white
SHOWN_CANDIDATES = 5  # next characters in the tooltip
_BLUE, _RED = (59, 76, 192), (180, 4, 38)


def _palette() -> str:
    """The CSS classes q0 .. q{2B}: blue at 0, white at B, red at 2B (text white where dark)."""
    rules = []
    for b in range(2 * BUCKETS + 1):
        t = (b - BUCKETS) / BUCKETS
        end = _RED if t > 0 else _BLUE
        rgb = [round(255 + abs(t) * (e - 255)) for e in end]
        ink = "color:#fff;" if abs(t) > 0.6 else ""
        rules.append(f".q{b}{{background:rgb({rgb[0]},{rgb[1]},{rgb[2]});{ink}}}")
    return "\n".join(rules)


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype).tobytes()).decode("ascii")


def _id_dtype(V: int) -> str:
    return "<u1" if V <= 256 else "<u2" if V <= 65536 else "<u4"


def render_page(
    acts: Activations,
    text: str | None = None,
    *,
    unit: tuple[int, int] | None = None,
    feature="quotes",
    units: list[UnitScore] | None = None,
    max_chars: int | None = None,
    title: str = "rnnfast viz",
) -> str:
    """The page of ``acts`` over ``text``, as one HTML string.

    Parameters
    ----------
    acts : Activations
        From ``rnnfast.inspect.activations``; the page shows h (N, L, H).
    text : str or None
        The N characters of ``acts`` (None: the text ``acts`` was computed from).
    unit : (layer, index) or None
        The unit the page opens with; None: the best of the search.
    feature
        What the search ranks the units by (a name of ``inspect.FEATURES``, a regex or N
        numbers, as ``inspect.search_units`` takes it).
    units : list of (layer, unit, score) or None
        The units of the picker; None: the search's top 10 (``unit``, when not among them,
        goes first).
    max_chars : int or None
        Show (and search over) only the first ``max_chars`` characters.
    title : str
        The page's heading.
    """
    text = acts.text if text is None else text
    if not isinstance(text, str):
        raise ValueError("text: expected the text of the activations (they were made from ids)")
    if len(text) != len(acts):
        raise ValueError(f"text: expected the {len(acts)} characters of the activations, "
                         f"got {len(text)}")  # fmt: skip
    if max_chars is not None and check_int("max_chars", max_chars) < len(acts):
        acts, text = acts.head(max_chars), text[:max_chars]
    L, H = acts.num_layers, acts.hidden_size
    if unit is not None:
        unit = check_unit(unit, L, H)
    if units is None:
        units = search_units(acts, feature, text=text, top=10)
    else:
        units = [UnitScore(*check_unit((layer, k), L, H), float(s)) for layer, k, s in units]
    if unit is not None and unit not in [(u.layer, u.unit) for u in units]:
        units.insert(0, UnitScore(*unit, float(correlations(acts, feature, text=text)[unit])))
    if not units:
        raise ValueError("units: expected at least one unit to show, got none")
    selected = 0 if unit is None else [(u.layer, u.unit) for u in units].index(unit)
    V = acts.logits.shape[1]
    k = min(SHOWN_CANDIDATES, acts.top_ids.shape[1])
    shown = [acts.h[:, u.layer, u.unit].astype(np.float64) for u in units]
    ranges = [(float(v.min()), float(v.max())) for v in shown]
    data = {
        "text": text,
        "vocab": acts.chars,
        "feature": describe(feature),
        "k": k,
        "id_bytes": np.dtype(_id_dtype(V)).itemsize,
        "top_ids": _b64(acts.top_ids[:, :k], _id_dtype(V)),
        "top_probs": _b64(np.rint(acts.top_probs[:, :k] * 65535), "<u2"),
        "loss": _b64(acts.loss, "<f4"),
        "loss_cap": math.log(V) if V > 1 else 1.0,
        "buckets": BUCKETS,
        "selected": selected,
        "units": [
            {
                "layer": u.layer,
                "unit": u.unit,
                "score": u.score,
                "low": low,
                "high": high,
                # -127 .. 127 from the lowest to the highest value
                "values": _b64(np.rint((2 * v - low - high) / ((high - low) or 1.0) * 127), "<i1"),
            }
            for u, v, (low, high) in zip(units, shown, ranges, strict=True)
        ],
    }
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    summary = f"{acts.cell.upper()}, {L} layer{'s' if L > 1 else ''} of {H} units; "
    if len(acts.loss):
        mean_loss = float(np.mean(acts.loss))
        summary += (f"{len(acts):,} characters, {mean_loss:.3f} nats "
                    f"({mean_loss / math.log(2):.3f} bits) per character")  # fmt: skip
    else:
        summary += "one character, nothing predicted"
    return _PAGE.format(
        title=html.escape(title), summary=html.escape(summary), palette=_palette(),
        feature=html.escape(describe(feature)), data=blob, script=_SCRIPT,
    )  # fmt: skip


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<script>
window.addEventListener("error", function (e) {{
  document.documentElement.setAttribute("data-errors", String(e.message));
}});
</script>
<style>
body {{ margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #222; background: #fff; }}
header {{ position: sticky; top: 0; z-index: 1; background: #f4f4f4;
  border-bottom: 1px solid #ccc; padding: 8px 16px; }}
h1 {{ font-size: 16px; margin: 0 0 2px; }}
.summary {{ color: #555; font-size: 12px; margin-bottom: 6px; }}
.controls {{ display: flex; flex-wrap: wrap; gap: 14px; align-items: center; }}
#legend {{ display: inline-flex; align-items: center; gap: 6px; font-size: 12px; }}
#legend .bar {{ width: 180px; height: 12px; border: 1px solid #bbb; }}
.bar.unit {{ background: linear-gradient(to right, rgb(59,76,192), #fff, rgb(180,4,38)); }}
.bar.loss {{ background: linear-gradient(to right, #fff, rgb(180,4,38)); }}
#text {{ font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  white-space: pre-wrap; word-break: break-all; padding: 12px 16px; margin: 0; }}
#tip {{ position: absolute; z-index: 2; max-width: 420px; background: #fffff4;
  border: 1px solid #999; box-shadow: 0 2px 6px rgba(0,0,0,0.2); padding: 6px 8px;
  font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; pointer-events: none; }}
#tip .hit {{ font-weight: bold; text-decoration: underline; }}
{palette}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div class="summary">{summary}</div>
<div class="controls">
<label><input type="radio" name="colour" value="unit" checked> colour by unit</label>
<select id="unit" aria-label="unit (layer:index, correlation with {feature})"></select>
<label><input type="radio" name="colour" value="loss"> colour by loss (where the model is
surprised)</label>
<span id="legend"><span id="legend-low"></span><span class="bar"></span>
<span id="legend-high"></span></span>
</div>
</header>
<div id="text"></div>
<div id="tip" hidden></div>
<script type="application/json" id="rnnfast-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""

_SCRIPT = r"""(function () {
  "use strict";
  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("rnnfast-data").textContent);
  function decode(b64, Type) {
    var s = atob(b64), bytes = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return new Type(bytes.buffer);
  }
  var chars = Array.from(data.text), n = chars.length, k = data.k, B = data.buckets;
  var vocab = data.vocab === null ? null : Array.from(data.vocab);
  var IdArray = {1: Uint8Array, 2: Uint16Array, 4: Uint32Array}[data.id_bytes];
  var topIds = decode(data.top_ids, IdArray), topProbs = decode(data.top_probs, Uint16Array);
  var loss = decode(data.loss, Float32Array);
  var units = data.units.map(function (u) {
    return {layer: u.layer, unit: u.unit, score: u.score, low: u.low, high: u.high,
            values: decode(u.values, Int8Array)};
  });
  var classes = [];
  for (var b = 0; b <= 2 * B; b++) classes.push("q" + b);

  var box = document.getElementById("text"), spans = new Array(n);
  var frag = document.createDocumentFragment();
  for (var i = 0; i < n; i++) {
    var span = document.createElement("span");
    span.textContent = chars[i];
    span.i = i;
    spans[i] = span;
    frag.appendChild(span);
  }
  box.appendChild(frag);

  var picker = document.getElementById("unit");
  units.forEach(function (u, j) {
    var option = document.createElement("option");
    option.value = j;
    option.textContent = "layer " + u.layer + ", unit " + u.unit + ":  r = " +
      (u.score >= 0 ? "+" : "") + u.score.toFixed(3);
    picker.appendChild(option);
  });
  picker.value = data.selected;

  function mode() { return document.querySelector("input[name=colour]:checked").value; }
  function colour() {
    var i, x;
    if (mode() === "unit") {
      var v = units[picker.value].values;
      for (i = 0; i < n; i++) spans[i].className = classes[B + Math.round(v[i] * B / 127)];
    } else {
      spans[0].className = classes[B];
      for (i = 1; i < n; i++) {
        x = Math.min(loss[i - 1] / data.loss_cap, 1);
        spans[i].className = classes[B + Math.round(x * B)];
      }
    }
    var unitMode = mode() === "unit";
    document.querySelector("#legend .bar").className = "bar " + (unitMode ? "unit" : "loss");
    var u = units[picker.value];
    document.getElementById("legend-low").textContent = unitMode ?
      "h = " + u.low.toPrecision(2) : "0 nats";
    document.getElementById("legend-high").textContent = unitMode ? u.high.toPrecision(2) :
      "\u2265 ln V = " + data.loss_cap.toFixed(2) + " nats";
    picker.disabled = !unitMode;
  }
  picker.addEventListener("change", colour);
  document.querySelectorAll("input[name=colour]").forEach(function (r) {
    r.addEventListener("change", colour);
  });

  function shown(ch) {
    return {"\n": "\u23ce", " ": "\u2423", "\t": "\u21e5"}[ch] || ch;
  }
  function name(id) { return vocab === null ? "#" + id : shown(vocab[id]); }
  function line(parent, text, cls) {
    var el = document.createElement("div");
    el.textContent = text;
    if (cls) el.className = cls;
    parent.appendChild(el);
    return el;
  }
  var tip = document.getElementById("tip");
  function show(i, event) {
    tip.textContent = "";
    var u = units[picker.value];
    line(tip, "'" + shown(chars[i]) + "'  character " + i + ";  unit " + u.layer + ":" +
      u.unit + " h \u2248 " +
      ((u.low + u.high) / 2 + u.values[i] / 254 * (u.high - u.low)).toPrecision(2));
    if (i > 0) {
      line(tip, "given the text before: p = " + Math.exp(-loss[i - 1]).toFixed(4) + ", " +
        loss[i - 1].toFixed(2) + " nats");
    }
    var next = line(tip, "next: ");
    for (var j = 0; j < k; j++) {
      var id = topIds[i * k + j], cand = document.createElement("span");
      cand.textContent = (j ? ",  " : "") + "'" + name(id) + "' " +
        (topProbs[i * k + j] / 65535).toFixed(3);
      if (i + 1 < n && vocab !== null && vocab[id] === chars[i + 1]) {
        cand.className = "hit";
      }
      next.appendChild(cand);
    }
    if (i + 1 === n) line(tip, "(the end of the text)");
    tip.hidden = false;
    tip.style.left = Math.min(event.pageX + 14, window.innerWidth - 440) + "px";
    tip.style.top = event.pageY + 18 + "px";
  }
  box.addEventListener("mouseover", function (event) {
    if (event.target.parentNode === box) show(event.target.i, event);
  });
  box.addEventListener("mouseleave", function () { tip.hidden = true; });

  colour();
  document.body.setAttribute("data-rendered", String(n));
  document.body.setAttribute("data-render-ms", (performance.now() - t0).toFixed(1));
  document.body.setAttribute("data-ready-ms", performance.now().toFixed(1));
})();"""
