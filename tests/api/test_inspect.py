"""rnnfast.inspect: activations are forward's own numbers, the text features are what their
docstrings say on hand-written texts, the unit search finds a planted unit (and nothing in
noise), and every bad input is a one-line error."""

import re

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast import inspect

TEXT = "def f(x):\n    return \"a(b)\" + x  # add one\n\nclass A:\n    s = 'it'\n" * 6
VOCAB = rnnfast.Vocab.from_text(TEXT + "Z")
CELLS = ["rnn", "lstm", "gru"]


def make_model(cell="lstm", num_layers=2, dtype=np.float32, backend="c", hidden_size=9):
    return rnnfast.CharLM(VOCAB, cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                          dtype=dtype, backend=backend, seed=3)  # fmt: skip


def the_same_model(model, backend):
    twin = make_model(model.cell, model.num_layers, model.dtype, backend, model.hidden_size)
    twin.flat_params[...] = model.flat_params
    return twin


# -- activations --------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_activations_are_forwards_bits(cell, num_layers, dtype):
    """Over a text that fits one chunk: the logits and the final state that forward returns,
    and every layer's h, c and gates that forward's own buffers hold, to the bit."""
    model = make_model(cell, num_layers, dtype)
    acts = inspect.activations(model, TEXT)
    logits, state = model.forward(acts.ids[:, None])
    np.testing.assert_array_equal(acts.logits, logits[:, 0])
    np.testing.assert_array_equal(acts.h[-1], state.h[:, 0])
    bufs = model._idle[-1].bufs  # the workspace that forward computed in, idle again
    for k in range(num_layers):
        np.testing.assert_array_equal(acts.h[:, k], bufs.hs[k][:, 0])
        if cell == "lstm":
            np.testing.assert_array_equal(acts.c[:, k], bufs.cs[k][:, 0])
        if cell != "rnn":
            np.testing.assert_array_equal(acts.gates[:, k], bufs.gates[k][:, 0])
    assert (acts.c is None) == (cell != "lstm") and (acts.gates is None) == (cell == "rnn")
    G = {"rnn": 0, "lstm": 4, "gru": 3}[cell] * model.hidden_size
    assert acts.h.shape == (len(TEXT), num_layers, model.hidden_size) and acts.h.dtype == dtype
    assert cell == "rnn" or acts.gates.shape == (len(TEXT), num_layers, G)
    assert acts.text == TEXT and acts.chars == VOCAB.chars and acts.cell == cell


@pytest.mark.parametrize("cell", CELLS)
def test_chunks_are_forward_over_the_same_chunks_with_the_state_carried(cell):
    """Chunks of 37 characters: forward over each chunk from the state the one before left,
    to the bit; and, against one pass over the whole text, the states agree to the suite's
    tolerance (bits are promised over the same chunks only: the kernels' products see other
    shapes)."""
    model = make_model(cell)
    chunked = inspect.activations(model, TEXT, chunk=37)
    state = None
    for start in range(0, len(TEXT), 37):
        logits, state = model.forward(chunked.ids[start : start + 37, None], state)
        np.testing.assert_array_equal(chunked.logits[start : start + 37], logits[:, 0])
        np.testing.assert_array_equal(chunked.h[start + len(logits) - 1], state.h[:, 0])
    whole = inspect.activations(model, TEXT)
    for name in ("h", "c", "gates"):
        if getattr(whole, name) is not None:
            assert_close(getattr(chunked, name), getattr(whole, name), np.float32, name)
    assert_close(chunked.loss, whole.loss, np.float32, "per-character loss")


@pytest.mark.parametrize("cell", CELLS)
def test_the_numpy_backend_gives_its_forward_and_the_c_one_agrees_with_it(cell, dtype):
    """On the reference backend activations are its own forward's bits too; the C backend's
    activations are the reference's to the tolerance table."""
    model = make_model(cell, dtype=dtype)
    reference = the_same_model(model, "numpy")
    expected = inspect.activations(reference, TEXT[:120])
    logits, _ = reference.forward(expected.ids[:, None])
    np.testing.assert_array_equal(expected.logits, logits[:, 0])
    actual = inspect.activations(model, TEXT[:120])
    for name in ("h", "c", "gates"):
        if getattr(expected, name) is not None:
            assert_close(getattr(actual, name), getattr(expected, name), dtype, name)
    assert_close(actual.logits, expected.logits, dtype, "logits")
    assert_close(actual.loss, expected.loss, dtype, "per-character loss")


def test_probabilities_are_a_softmax_of_forwards_logits():
    model = make_model("lstm", dtype=np.float64)
    acts = inspect.activations(model, TEXT, top_k=4)
    logits, _ = model.forward(acts.ids[:, None])
    z = logits[:, 0] - logits[:, 0].max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    following = acts.ids[1:]
    np.testing.assert_allclose(acts.next_prob, p[np.arange(len(TEXT) - 1), following], rtol=1e-12)
    np.testing.assert_allclose(acts.loss, -np.log(acts.next_prob), rtol=1e-12)
    expected_top = np.argsort(-p, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(acts.top_ids, expected_top)
    np.testing.assert_allclose(acts.top_probs, np.take_along_axis(p, expected_top, 1), rtol=1e-12)
    assert np.all(np.diff(acts.top_probs, axis=1) <= 0)
    assert acts.next_prob.shape == acts.loss.shape == (len(TEXT) - 1,)
    mean, _ = model.loss(acts.ids[:-1, None], acts.ids[1:, None])
    assert np.mean(acts.loss) == pytest.approx(mean, rel=1e-12)


def test_ids_give_the_text_s_activations_and_head_cuts_every_array():
    model = make_model("lstm")
    from_text = inspect.activations(model, TEXT)
    from_ids = inspect.activations(model, VOCAB.encode(TEXT))
    np.testing.assert_array_equal(from_ids.h, from_text.h)
    assert from_ids.text is None
    head = from_text.head(10)
    assert len(head) == 10 and head.text == TEXT[:10] and head.loss.shape == (9,)
    assert head.c.shape[0] == head.gates.shape[0] == head.top_ids.shape[0] == 10
    assert inspect.activations(model, TEXT, gates=False).gates is None


# -- features -----------------------------------------------------------------------------------


def bits(marks: str) -> np.ndarray:
    """A feature written under its text: a digit per character, spaces ignored."""
    return np.array([int(ch) for ch in marks.replace(" ", "")], np.float64)


@pytest.mark.parametrize("feature, text, marks", [
    ("quotes", "s = \"a'b\" + 'c\"d' # \"x\"\n\"o\\\"p\nz",
     "0000 1111 0 000 1111 0 0 00000 0 11111 0 0"),
    ("brackets", "f(a[1], {b}) ) (x", "01111111111 0000 11"),
    ("line_position", "ab\ncd\n\ne", "012 012 0 0"),
    ("indent", "a\n  b\n\tc", "00 2222 11"),
    ("comment", "x = 1  # one \"#\"\n'#no' # yes", "0000000 111111111 0 00000 0 11111"),
    ("word_start", "the cat_2 x1 _y 3d \u00c9", "1000 100000 100 000 000 1"),
])  # fmt: skip
def test_built_in_features_on_hand_written_texts(feature, text, marks):
    expected = bits(marks)
    assert len(expected) == len(text)
    np.testing.assert_array_equal(inspect.feature_values(text, feature), expected)


def test_a_regex_marks_its_matches_and_numbers_pass_through():
    np.testing.assert_array_equal(inspect.feature_values("abcabc", "bc"), bits("011011"))
    np.testing.assert_array_equal(inspect.feature_values("a1b22", re.compile(r"\d+")),
                                  bits("01011"))  # fmt: skip
    np.testing.assert_array_equal(inspect.feature_values("abc", "x*"), bits("000"))  # empty
    values = inspect.feature_values("abc", [1, 2, 3])
    assert values.dtype == np.float64 and list(values) == [1, 2, 3]
    assert inspect.feature_values(None, np.arange(4), 4).shape == (4,)


# -- unit search --------------------------------------------------------------------------------


def planted(N=3000, L=2, H=8, layer=1, unit=5, sign=1.0, noise=0.3, seed=0):
    """Activations of noise over a text with quotes, with ``unit`` of ``layer`` (when given)
    equal to sign * the quotes feature plus noise, and unit 0 of layer 0 constant."""
    rng = np.random.default_rng(seed)
    text = "".join(rng.choice(list("ab \"'\n"), N, p=[0.35, 0.35, 0.14, 0.05, 0.05, 0.06]))
    h = rng.standard_normal((N, L, H)).astype(np.float32)
    if unit is not None:
        h[:, layer, unit] = sign * inspect.feature_values(text, "quotes")
        h[:, layer, unit] += noise * rng.standard_normal(N)
    h[:, 0, 0] = 0.5
    zeros = np.zeros(N - 1)
    empty = np.zeros((N, 1))
    acts = inspect.Activations(np.zeros(N, np.int64), h, None, None, empty, zeros,
                               empty.astype(np.int64), empty, zeros, "gru", text)  # fmt: skip
    return acts


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_search_finds_a_planted_unit(sign):
    acts = planted(sign=sign)
    found = inspect.search_units(acts, "quotes", top=3)
    assert found[0][:2] == (1, 5) and sign * found[0].score > 0.8
    assert all(abs(u.score) < 0.15 for u in found[1:])
    assert all(u.layer == 0 for u in inspect.search_units(acts, "quotes", layer=0, top=2))


def test_noise_alone_tracks_nothing():
    """Negative control: no unit planted, no unit scores above chance (3000 characters:
    |r| ~ 1/sqrt(3000) = 0.02)."""
    found = inspect.search_units(planted(unit=None), "quotes", top=16)
    assert len(found) == 16 and max(abs(u.score) for u in found) < 0.1


def test_correlations_are_pearson_s_and_a_constant_unit_scores_0():
    acts = planted(N=500)
    f = inspect.feature_values(acts.text, "quotes")
    scores = inspect.correlations(acts, "quotes")
    assert scores.shape == (2, 8) and scores[0, 0] == 0.0
    for layer, unit in [(0, 3), (1, 5), (1, 7)]:
        expected = np.corrcoef(acts.h[:, layer, unit].astype(np.float64), f)[0, 1]
        assert scores[layer, unit] == pytest.approx(expected, abs=1e-12)
    numbers = np.arange(500.0)
    assert inspect.correlations(acts, numbers).shape == (2, 8)


# -- bad input ----------------------------------------------------------------------------------


def error_of(call):
    try:
        call()
    except (ValueError, TypeError) as err:
        return err
    raise AssertionError("no error")


BAD = [
    ("empty text", lambda m, a: inspect.activations(m, ""), ValueError, "text: expected at least"),
    ("no ids", lambda m, a: inspect.activations(m, []), ValueError, "got no ids"),
    ("unknown characters", lambda m, a: inspect.activations(m, "abc\u00e9\u00e9!"), ValueError,
     "2 character(s) not in the model's vocabulary: '!', '\u00e9'"),
    ("id out of range", lambda m, a: inspect.activations(m, [0, 99]), ValueError,
     "character id 99 out of range"),
    ("ids of two dimensions", lambda m, a: inspect.activations(m, [[0, 1]]), ValueError,
     "expected character ids of shape (N,)"),
    ("top_k above V", lambda m, a: inspect.activations(m, "ab", top_k=99), ValueError,
     "top_k: expected at most the vocabulary size"),
    ("not a model", lambda m, a: inspect.activations(object(), "ab"), TypeError,
     "model: expected a CharLM"),
    ("a model without a vocabulary", lambda m, a: inspect.activations(
        rnnfast.CharLM(5, hidden_size=3), "ab"), ValueError, "pass ids"),
    ("regex that does not compile", lambda m, a: inspect.search_units(a, "(a"), ValueError,
     "regex '(a': does not compile: missing ), unterminated subpattern"),
    ("unit's layer out of range", lambda m, a: inspect.check_unit((2, 0), 2, 9), ValueError,
     "unit: layer 2 out of range: the model has 2 layer(s), 0 .. 1"),
    ("unit's index out of range", lambda m, a: inspect.check_unit((0, 9), 2, 9), ValueError,
     "unit: index 9 out of range: a layer has 9 units, 0 .. 8"),
    ("negative unit", lambda m, a: inspect.check_unit((0, -1), 2, 9), ValueError,
     "unit's index: expected a non-negative integer, got -1"),
    ("search layer out of range", lambda m, a: inspect.search_units(a, "quotes", layer=2),
     ValueError, "layer: expected one of 0 .. 1, got 2"),
    ("constant feature", lambda m, a: inspect.search_units(a, "Q"), ValueError,
     "feature: regex /Q/ is constant over the text"),
    ("wrong number of values", lambda m, a: inspect.search_units(a, np.ones(3)), ValueError,
     "feature: expected shape"),
    ("a feature of another type", lambda m, a: inspect.search_units(a, {"a": 1}), TypeError,
     "feature: expected one of ('quotes', 'brackets'"),
    ("unknown state", lambda m, a: inspect.search_units(a, "quotes", state="x"), ValueError,
     "state: expected one of ('h', 'c', 'gates')"),
    ("no cell state", lambda m, a: inspect.search_units(
        inspect.activations(make_model("gru"), TEXT), "quotes", state="c"), ValueError,
     "'c' is not in these activations (a GRU has no cell state)"),
    ("gates not kept", lambda m, a: inspect.search_units(a, "quotes", state="gates"),
     ValueError, "activations(..., gates=False) kept none"),
    ("text of another length", lambda m, a: inspect.search_units(a, "quotes", text="ab"),
     ValueError, f"text: expected the {len(TEXT)} characters of the activations, got 2"),
    ("activations of ids", lambda m, a: inspect.search_units(
        inspect.activations(m, VOCAB.encode(TEXT)), "quotes"), ValueError,
     "text: needed for the feature quotes"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_a_one_line_error(call, error, message):
    model = make_model("lstm")
    acts = inspect.activations(model, TEXT, gates=False)
    err = error_of(lambda: call(model, acts))
    assert type(err) is error and message in str(err) and "\n" not in str(err), str(err)
