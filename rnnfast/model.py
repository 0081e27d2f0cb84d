"""The character-level language model and the seed's stateful cells, over either backend.

The model code below is written once; ``backend`` picks the kernels it calls (``rnnfast.backends``:
``"c"``, the default, the C kernels of ``rnnfast._kernels``; ``"numpy"`` their NumPy twins).
Optimizers and samplers reach those kernels through the model's public ``kernels`` attribute.
The layers run through the one stack loop of ``rnnfast.stack``; a training step is one call of
the backend's fused step (``kernels.TrainStep``).
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import stack
from .backends import kernels
from .core import (
    CELL_NAMES,
    CELLS,
    GATES,
    LayerWeights,
    Params,
    State,
    layer_shapes,
    layer_weights,
    param_shapes,
)
from .data import Vocab
from .validation import (
    INDEX_DTYPE,
    check_array,
    check_choice,
    check_float_dtype,
    check_ids,
    check_int,
    check_real,
    check_top_p,
)


class _Workspace:
    """Buffers for one (T, B): the stack's activations, the gradients flowing between layers
    and the output layer's, sized once and reused by every call with the same shape."""

    def __init__(self, cell, T, B, V, H, L, dtype):
        G = GATES[cell] * H
        self.shape = (T, B)
        self.dtype = np.dtype(dtype)
        self.bufs = stack.Buffers.allocate(cell, T, B, H, L, dtype)
        self.dR = np.empty((T, B, G), dtype) if cell == "gru" else None
        self.logits = np.empty((T * B, V), dtype)
        self.dlogits = np.empty((T * B, V), dtype)
        self.dhs = [np.empty((T, B, H), dtype) for _ in range(L)]
        self.dA = np.empty((T, B, G), dtype)
        # with dropout: every layer's dropped output h * mask and the masks, each (L, T, B, H)
        self.masks = None
        self._dropout_shape = (L, T, B, H)
        self.train_step = None  # the backend's fused training step over these buffers

    def dropout_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """(outs, masks), each (L, T, B, H), allocated at the first call."""
        if self.masks is None:
            self.bufs.outs = np.empty(self._dropout_shape, self.dtype)
            self.masks = np.empty_like(self.bufs.outs)
        return self.bufs.outs, self.masks


class CharLM(stack.StackedLayers):
    """A character-level language model: an embedding by row gather, ``num_layers`` stacked
    RNN, LSTM or GRU layers, a linear output layer and a softmax over the vocabulary.

    Parameters
    ----------
    vocab : Vocab or int
        The vocabulary, or just its size V (then sampling needs ids, not text).
    cell : {"lstm", "rnn", "gru"}
    hidden_size : int
    num_layers : int
    dtype : numpy dtype, float32 (default) or float64
    backend : {"c", "numpy"}
        The kernels: C (``rnnfast._kernels``, the default) or NumPy (``rnnfast.reference``,
        whose ``CharLM`` is this class with ``backend="numpy"`` as its default).
    seed : int or None
        Seeds the initial weights: uniform in [-1/sqrt(H), 1/sqrt(H)], as PyTorch does; and,
        independently of them, ``generator``.
    dropout : float in [0, 1)
        Inverted dropout on the output of every layer, the top one included (what the layer
        above and the output layer read; the recurrence reads the undropped h): in training
        each output element is zeroed with probability ``dropout`` and the others scaled by
        1 / (1 - dropout).  Applied by ``train_step``, and by ``loss`` and ``loss_and_grads``
        with ``train=True``; never in evaluation or sampling.  0 (the default): none.

    Attributes
    ----------
    kernels : namespace
        The backend's kernels (``rnnfast.backends.kernels(backend)``), which the optimizers and
        samplers of this model call.
    generator : numpy.random.Generator
        Draws the dropout masks (``dropout_masks``); a checkpoint saves its state, so a
        resumed training draws the masks the uninterrupted one would have drawn.

    Notes
    -----
    Threads: every method that does not train (``loss``, ``loss_and_grads``, ``forward``,
    ``step``, ``sample``, ``sampler``, ``beam_search``) may be called from any number of threads
    at once and returns what the lone call returns: each call computes in a workspace no other
    call uses.
    ``train_step`` and ``gradients`` run one at a time per model (a second thread waits); a
    call that reads the parameters while another thread trains reads them as they are then.
    A ``Sampler`` carries its streams' state: one thread draws from it at a time.
    """

    def __init__(
        self,
        vocab: Vocab | int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        dtype=np.float32,
        backend: str = "c",
        seed: int | None = None,
        dropout: float = 0.0,
    ):
        if isinstance(vocab, Vocab):
            self.vocab, V = vocab, len(vocab)
        elif isinstance(vocab, (int, np.integer)) and not isinstance(vocab, bool):
            self.vocab, V = None, check_int("vocab", vocab)
        else:
            raise TypeError(f"vocab: expected a Vocab or an int, got {type(vocab).__name__}")
        self.cell = check_choice("cell", cell, CELLS)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.dtype = check_float_dtype("dtype", dtype)
        self.dropout = check_real("dropout", dropout, high=1.0, low_inclusive=True)
        self.kernels = kernels(backend)
        self.backend, self.vocab_size = backend, V
        self._init_params(param_shapes(cell, V, self.hidden_size, self.num_layers), seed)
        self._weights = layer_weights(self.params, self.num_layers)
        # the sampling kernel's lists of every layer's W_x, W_h, b (and a GRU's b_hn)
        self._layer_weights = [[getattr(w, name) for w in self._weights]
                               for name in ("W_x", "W_h", "b")]  # fmt: skip
        self._b_hn = [w.b_hn for w in self._weights] if cell == "gru" else None
        self._grads = self.zeros_like_params()
        self._workspace = None  # the training step's, reused step after step
        self._idle = []  # workspaces of the other calls, one per call at a time (``_borrowed``)
        self._idle_lock = threading.Lock()
        self._training = threading.Lock()  # one training step at a time

    def __repr__(self) -> str:
        return (
            f"CharLM(vocab_size={self.vocab_size}, cell={self.cell!r}, "
            f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"dtype={self.dtype.name}, backend={self.backend!r}"
            + (f", dropout={self.dropout:g})" if self.dropout else ")")
        )

    @classmethod
    def from_torch(cls, rnn, linear, vocab: Vocab | None = None, *, backend: str | None = None):
        """A model holding the weights of a PyTorch ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU``
        (any num_layers, one-hot input of the vocabulary's size) and its ``nn.Linear`` decoder.
        ``backend`` None keeps the class's default (``"numpy"`` for ``reference.CharLM``)."""
        from .torch_interop import load_from_torch, torch_config

        config = torch_config(rnn, linear)
        if vocab is not None and len(vocab) != rnn.input_size:
            raise ValueError(
                f"vocab: {len(vocab)} characters, but the rnn's input_size is {rnn.input_size}"
            )
        if backend is not None:
            config["backend"] = backend
        model = cls(rnn.input_size if vocab is None else vocab, **config)
        load_from_torch(model, rnn, linear)
        return model

    def to_torch(self):
        """A new ``(nn.RNN, nn.LSTM or nn.GRU, nn.Linear)`` pair with this model's weights."""
        from .torch_interop import to_torch

        return to_torch(self)

    # -- checking inputs -------------------------------------------------------------------

    def check_state(self, state: State | None, batch_size: int) -> State:
        """``state`` for ``batch_size`` streams as C-contiguous arrays (zeros when None), or an
        error naming the part of it that is wrong."""
        if state is None:
            return self.zero_state(batch_size)
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(
                "state: expected a State (h, c) as returned by zero_state or loss, "
                f"got {type(state).__name__}"
            )
        shape = (self.num_layers, batch_size, self.hidden_size)
        h = check_array("state.h", state[0], shape, self.dtype)
        if self.cell != "lstm":
            if state[1] is not None:
                got = type(state[1]).__name__
                raise ValueError(
                    f"state.c: expected None ({CELL_NAMES[self.cell]} has no cell state), got {got}"
                )
            return State(h)
        return State(h, check_array("state.c", state[1], shape, self.dtype))

    def _new_workspace(self, T: int, B: int) -> _Workspace:
        return _Workspace(
            self.cell, T, B, self.vocab_size, self.hidden_size, self.num_layers, self.dtype
        )

    def _workspace_for(self, T: int, B: int) -> _Workspace:
        """The training step's workspace for (T, B) (callers hold ``_training``)."""
        if self._workspace is None or self._workspace.shape != (T, B):
            self._workspace = self._new_workspace(T, B)
        return self._workspace

    @contextmanager
    def _borrowed(self, T: int, B: int) -> Iterator[_Workspace]:
        """A workspace of (T, B) that no other call uses while this one holds it: an idle one,
        or a new one when every idle one is busy or of another shape (those are dropped, so
        idle memory stays that of the last shape's most concurrent calls)."""
        with self._idle_lock:
            ws = next((w for w in self._idle if w.shape == (T, B)), None)
            if ws is None:
                self._idle = [w for w in self._idle if w.shape == (T, B)]
            else:
                self._idle.remove(ws)
        if ws is None:
            ws = self._new_workspace(T, B)
        try:
            yield ws
        finally:
            with self._idle_lock:
                if all(w.shape == ws.shape for w in self._idle):
                    self._idle.append(ws)

    # -- forward and backward --------------------------------------------------------------

    def dropout_masks(self, T: int, B: int) -> np.ndarray:
        """New dropout masks (L, T, B, H) for a (T, B) batch, drawn from ``generator``: each
        element 0 with probability ``dropout``, else 1 / (1 - dropout) (in the model's
        dtype).  ``loss``, ``loss_and_grads`` and ``train_step`` draw theirs the same way."""
        T, B = check_int("T", T), check_int("B", B)
        masks = np.empty((self.num_layers, T, B, self.hidden_size), self.dtype)
        self._draw_masks(masks)
        return masks

    def _check_masks(self, masks, T: int, B: int) -> np.ndarray:
        return check_array("masks", masks, (self.num_layers, T, B, self.hidden_size), self.dtype)

    def _masks_for(self, ws: _Workspace, train: bool, masks) -> np.ndarray | None:
        """The masks of this call: ``masks`` checked, new ones when training with dropout, or
        None (no dropout)."""
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train: expected a bool, got {type(train).__name__}")
        if masks is not None:
            return self._check_masks(masks, *ws.shape)
        if not (train and self.dropout):
            return None
        _, masks = ws.dropout_buffers()
        self._draw_masks(masks)
        return masks

    def _forward(self, ws: _Workspace, x: np.ndarray, state: State, masks) -> None:
        """Run every layer and the output layer over x (T, B) in ``ws``, with dropout when
        ``masks`` (L, T, B, H) is given; logits land in ``ws.logits``."""
        T, B = x.shape
        if masks is not None:
            ws.dropout_buffers()
        stack.forward(self.kernels, ws.bufs, x, self._weights, state.h, state.c, masks)
        top = ws.bufs.outputs[-1].reshape(T * B, -1)
        self.kernels.linear_forward(ws.logits, top, self.params["W_y"], self.params["b_y"])

    def _backward(self, grads: Params, x: np.ndarray, state: State, ws: _Workspace) -> State:
        """Accumulate into ``grads`` the gradient of the loss whose dlogits is in ``ws``;
        returns the gradient of the initial state."""
        T, B = x.shape
        dstate = self.zero_state(B)
        top = ws.bufs.outputs[-1].reshape(T * B, -1)
        self.kernels.linear_backward(ws.dhs[-1].reshape(T * B, -1), grads["W_y"], grads["b_y"],
                                     ws.dlogits, top, self.params["W_y"])  # fmt: skip
        dweights = layer_weights(grads, self.num_layers)
        stack.backward(self.kernels, ws.bufs, x, self._weights, dweights, ws.dhs, None,
                       state.h, state.c, dstate.h, dstate.c, ws.dA, ws.dR)  # fmt: skip
        return dstate

    def _inputs(self, x, y, state):
        x = check_ids("x", x, self.vocab_size, ("T", "B"))
        y = check_ids("y", y, self.vocab_size, ("T", "B"))
        if x.shape != y.shape:
            raise ValueError(f"y: expected the shape of x {x.shape}, got {y.shape}")
        return x, y.reshape(-1), self.check_state(state, x.shape[1])

    def loss(
        self, x, y, state: State | None = None, *, train: bool = False, masks=None
    ) -> tuple[float, State]:
        """Mean cross-entropy (nats per character) of predicting y from x, both (T, B) ids,
        starting from ``state`` (zeros when None); returns the loss and the final state.

        Dropout: none unless ``train=True`` (new masks from ``generator``, when ``dropout``
        > 0) or ``masks`` (L, T, B, H) are given (applied as they are, e.g. from
        ``dropout_masks``).
        """
        x, y, state = self._inputs(x, y, state)
        with self._borrowed(*x.shape) as ws:
            masks = self._masks_for(ws, train, masks)
            self._forward(ws, x, state, masks)
            loss = self.kernels.softmax_xent(None, ws.logits, y)
            return loss, ws.bufs.final_state()

    def loss_and_grads(
        self,
        x,
        y,
        state: State | None = None,
        *,
        state_grad: bool = False,
        train: bool = False,
        masks=None,
    ):
        """Loss, gradients of every parameter (a new ``Params`` like ``.params``) and final
        state.

        With ``state_grad=True`` also returns the gradient of the loss with respect to the
        initial state, as a State: ``(loss, grads, state, dstate)``.  Dropout (``train``,
        ``masks``): as in ``loss``.  ``gradients`` is the training step's faster form.
        """
        x, y, state = self._inputs(x, y, state)
        grads = self.zeros_like_params()
        with self._borrowed(*x.shape) as ws:
            masks = self._masks_for(ws, train, masks)
            self._forward(ws, x, state, masks)
            loss = self.kernels.softmax_xent(ws.dlogits, ws.logits, y)
            dstate = self._backward(grads, x, state, ws)
            final = ws.bufs.final_state()
        return (loss, grads, final, dstate) if state_grad else (loss, grads, final)

    # -- the training step: one call of the backend's fused step ----------------------------

    def gradients(
        self,
        x,
        y,
        state: State | None = None,
        *,
        clip: float | None = None,
        max_norm: float | None = None,
        scale: float = 1.0,
        train: bool = True,
        masks=None,
    ) -> tuple[float, Params, State]:
        """The training step without its update, as one call of the backend's fused step:
        forward over x (T, B), softmax cross-entropy, backward, the gradients times ``scale``,
        clipped by value ``clip`` and by global norm ``max_norm``.  Returns
        ``(loss, grads, state)``; ``grads`` is the model's own gradient buffer, overwritten by
        the next call (copy it to keep it).  Like ``train_step``, one call at a time per model
        (concurrent calls wait for each other).

        Dropout as ``train_step`` draws it (``train=True``, the default; ``train=False``: none),
        or the given ``masks`` (L, T, B, H), e.g. a share of ``dropout_masks`` of a larger
        batch.
        """
        clip = check_real("clip", clip, optional=True)
        max_norm = check_real("max_norm", max_norm, optional=True)
        scale = check_real("scale", scale)
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train: expected a bool, got {type(train).__name__}")
        with self._training:
            loss, final = self._step(x, y, state, clip, max_norm, scale, None, train, masks)
        return loss, self._grads, final

    def train_step(
        self,
        x,
        y,
        optimizer,
        state: State | None = None,
        clip: float | None = 5.0,
        max_norm: float | None = None,
    ) -> tuple[float, State]:
        """One step of truncated BPTT: forward over x (T, B), softmax cross-entropy, backward,
        gradient clipping (by value ``clip``, and by global norm ``max_norm``), optimizer
        update, with dropout (``dropout`` > 0: new masks from ``generator``).  A non-finite loss
        raises FloatingPointError and leaves the model unchanged.

        One call of the backend's fused step (``kernels.TrainStep``; the C one releases the GIL
        once) does it all with one of the four built-in optimizers; another optimizer's own
        ``step`` applies the gradients of the fused step's gradients-only mode.  Steps on one
        model from several threads run one at a time.
        """
        if optimizer.model is not self:
            raise ValueError("optimizer: expected one created for this model, got one of another")
        clip = check_real("clip", clip, optional=True)
        max_norm = check_real("max_norm", max_norm, optional=True)
        with self._training:
            update = optimizer.fused_update()
            loss, final = self._step(x, y, state, clip, max_norm, 1.0, update, True, None)
            if not math.isfinite(loss):
                raise FloatingPointError(f"training loss is {loss}: the model was not updated")
            if update is None:
                optimizer.step(self._grads)
            else:
                optimizer.count_fused_step()
        return loss, final

    def _step(self, x, y, state, clip, max_norm, scale, update, train, masks):
        """One call of the fused step.  Ids and states that already are int64 / the model's
        dtype and C-contiguous pass as they are, for the step to check their shapes and values
        itself (in C, at a fraction of the cost of the checks here); anything else goes
        through the checks that convert it first."""
        if not _is_kernel_array(x, INDEX_DTYPE, 2):
            x = check_ids("x", x, self.vocab_size, ("T", "B"))
        if not _is_kernel_array(y, INDEX_DTYPE, 2):
            y = check_ids("y", y, self.vocab_size, ("T", "B"))
        T, B = x.shape
        if state is None:
            state = self.zero_state(B)
        elif not (type(state) is State and _is_kernel_array(state.h, self.dtype, 3)
                  and (_is_kernel_array(state.c, self.dtype, 3) if self.cell == "lstm"
                       else state.c is None)):  # fmt: skip
            state = self.check_state(state, B)
        draw = None
        if masks is not None:
            masks = self._check_masks(masks, T, B)
            draw = lambda buffer: np.copyto(buffer, masks)  # noqa: E731
        elif train and self.dropout:
            draw = self._draw_masks
        step = self._train_step_for(T, B, draw is not None)
        loss, h, c = step.step(x, y, state.h, state.c, draw, scale, clip, max_norm, update)
        return loss, State(h, c)

    def _train_step_for(self, T: int, B: int, dropout: bool = False):
        """The backend's fused step over the workspace of (T, B), built at its first use (and
        again with dropout buffers when a step first needs them)."""
        ws = self._workspace_for(T, B)
        if ws.train_step is None or (dropout and ws.train_step.masks is None):
            outs, masks = ws.dropout_buffers() if dropout or self.dropout else (None, None)
            bufs = ws.bufs
            ws.train_step = self.kernels.TrainStep(
                self.cell, self.params, self._grads, bufs.hs, bufs.cs or None,
                bufs.tcs or None, bufs.gates or None, bufs.R or None, ws.dhs, ws.dA, ws.dR,
                ws.logits, ws.dlogits, outs, masks,
            )  # fmt: skip
        return ws.train_step

    def forward(self, x, state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed x (T, B) character ids from ``state``; returns the logits (T, B, V) of every
        next character and the final state."""
        x = check_ids("x", x, self.vocab_size, ("T", "B"))
        state = self.check_state(state, x.shape[1])
        with self._borrowed(*x.shape) as ws:
            self._forward(ws, x, state, None)
            return ws.logits.reshape(*x.shape, -1).copy(), ws.bufs.final_state()

    def step(self, ids, state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed one character per stream, ids (B,); returns the logits (B, V) of the next
        character and the new state."""
        ids = check_ids("ids", ids, self.vocab_size, ("B",))
        logits, state = self.forward(ids[None, :], state)
        return logits[0], state

    def sampler(
        self,
        first_ids,
        state: State | None = None,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        argmax: bool = False,
        top_p: float | None = None,
        apart: bool = False,
    ) -> Sampler:
        """A ``Sampler`` of S streams that start by feeding ``first_ids`` (S,) from ``state``
        (zeros when None; not modified), drawing by ``reference.draw``'s rule: the softmax of
        logits / temperature, optionally over only the ``top_k`` likeliest, then over only the
        smallest set of the likeliest whose probability reaches ``top_p`` (in (0, 1]; nucleus
        sampling), or the likeliest with ``argmax``.  ``apart``: every stream's arithmetic as if
        it were drawn alone, so a stream draws the bits ``sample`` draws for it whatever streams
        are beside it (one-row products where a taller product would sum in another order;
        slower at several streams)."""
        if not isinstance(apart, (bool, np.bool_)):
            raise TypeError(f"apart: expected a bool, got {type(apart).__name__}")
        first_ids = check_ids("first_ids", first_ids, self.vocab_size, ("S",))
        state = self.check_state(state, first_ids.shape[0])
        return Sampler(
            self,
            first_ids,
            State(state.h.copy(), None if state.c is None else state.c.copy()),
            check_real("temperature", temperature),
            check_int("top_k", top_k, optional=True),
            bool(argmax),
            check_top_p(top_p),
            bool(apart),
        )

    def sample(
        self,
        length: int,
        prime: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        argmax: bool = False,
        seed: int | None = None,
        num_samples: int | None = None,
        skip_unknown: bool = False,
        top_p: float | None = None,
    ):
        """Generate ``length`` characters after ``prime``; returns prime + generated text (a
        list of ``num_samples`` such strings when it is given).  See ``rnnfast.sampling``."""
        from .sampling import sample_text

        return sample_text(
            self,
            length,
            prime=prime,
            temperature=temperature,
            top_k=top_k,
            argmax=argmax,
            seed=seed,
            num_samples=num_samples,
            skip_unknown=skip_unknown,
            top_p=top_p,
        )

    def beam_search(
        self, length: int, prime: str = "", width: int = 4, *, skip_unknown: bool = False
    ) -> list[tuple[str, float]]:
        """The ``width`` likeliest continuations of ``length`` characters after ``prime``, by
        beam search over batched ``step`` calls: [(prime + continuation, logprob), ...], best
        first, where logprob is the sum of the natural-log probabilities of the generated
        characters given the prime (float64); equal logprobs in lexicographic order of the
        characters' ids.  Without a prime the first character is uniform over the vocabulary,
        as in ``sample``.  See ``rnnfast.sampling.beam_search_ids``."""
        from .sampling import beam_search

        return beam_search(self, length, prime, width, skip_unknown=skip_unknown)


class Sampler:
    """Streams of text drawn from a model a chunk at a time, one kernel call per chunk
    (``CharLM.sampler`` makes one, checking its arguments once).

    ``draw(uniforms)`` feeds each stream's last character, draws the next from ``uniforms[t]``
    (N, S) of [0, 1), feeds it back, N times, and returns the drawn ids (N, S); the next call
    continues where this one stopped.  The model's weights are read at every call.
    ``select`` and ``concatenate`` take streams out and put them together (a server's batch,
    whose requests come and go).
    """

    def __init__(self, model: CharLM, first_ids, state: State, temperature, top_k, argmax,
                 top_p, apart=False):  # fmt: skip
        self._model, self._next_ids, self._state = model, first_ids, state
        self._options = temperature, top_k, argmax, top_p
        self._apart = apart

    @property
    def num_streams(self) -> int:
        """S, the streams this sampler draws."""
        return self._next_ids.shape[0]

    def select(self, streams) -> Sampler:
        """A new Sampler that continues the given streams of this one.

        Parameters
        ----------
        streams : sequence of int
            Indices in [0, S), in the order the new sampler's streams take; at least one.

        Returns
        -------
        Sampler
            The same model and options, its own copy of those streams' last ids and state (this
            sampler is not changed).
        """
        S, index = self.num_streams, np.asarray(streams)
        if not (index.ndim == 1 and index.size and index.dtype.kind in "iu"
                and 0 <= index.min() and index.max() < S):  # fmt: skip
            raise ValueError(
                f"streams: expected a sequence of indices in [0, {S}), got {streams!r}"
            )
        h, c = (None if a is None else np.ascontiguousarray(a[:, index]) for a in self._state)
        return self._with_streams(self._next_ids[index], State(h, c))

    @staticmethod
    def concatenate(samplers) -> Sampler:
        """One Sampler that continues every stream of ``samplers``: the first's streams, then
        the second's, and so on (copies: the samplers given are not changed).

        Parameters
        ----------
        samplers : sequence of Sampler
            At least one, all of one model and with equal options (temperature, top_k, ...).

        Returns
        -------
        Sampler
        """
        samplers = list(samplers)
        if not samplers:
            raise ValueError("samplers: expected at least one Sampler, got none")
        first = samplers[0]
        for k, other in enumerate(samplers[1:], 1):
            same = (other._options, other._apart) == (first._options, first._apart)
            if other._model is not first._model or not same:
                raise ValueError(
                    f"samplers[{k}]: expected the model and options of samplers[0], got "
                    f"{'another model' if other._model is not first._model else 'other options'}"
                )
        ids = np.concatenate([s._next_ids for s in samplers])
        h = np.concatenate([s._state.h for s in samplers], axis=1)
        c = None if first._state.c is None else np.concatenate([s._state.c for s in samplers], 1)
        return first._with_streams(ids, State(h, c))

    def _with_streams(self, next_ids: np.ndarray, state: State) -> Sampler:
        """A sampler of this one's model and options over ``next_ids`` and ``state`` (its own
        arrays, C-contiguous)."""
        new = copy.copy(self)
        new._next_ids, new._state = next_ids, state
        return new

    def draw(self, uniforms) -> np.ndarray:
        """The ids (N, S) drawn with ``uniforms`` (N, S), continuing every stream."""
        S = self.num_streams
        uniforms = check_array("uniforms", uniforms, ("N", S), np.float64, finite=False)
        out = np.empty(uniforms.shape, INDEX_DTYPE)
        if len(out):
            model = self._model
            model.kernels.sample(
                out, uniforms, self._next_ids, *self._state, *model._layer_weights,
                model.params["W_y"], model.params["b_y"], *self._options, b_hn=model._b_hn,
                apart=self._apart,
            )  # fmt: skip
            self._next_ids = out[-1].copy()
        return out


def _is_kernel_array(a, dtype: np.dtype, ndim: int) -> bool:
    """Whether ``a`` is a C-contiguous ndarray of ``dtype`` with ``ndim`` dimensions (``is``:
    NumPy's built-in dtypes are singletons; another equal one only takes the converting path)."""
    return type(a) is np.ndarray and a.dtype is dtype and a.ndim == ndim and a.flags.c_contiguous


class _Cell:
    """The seed's stateful object: ``y = cell.step(x)`` keeps the hidden state between calls.

    x is one input vector (I,) or a batch (B, I); y is the output (O,) or (B, O), or h itself
    when there is no output layer (``output_size=None``).  ``reset()`` forgets the state.
    The state lives in the object, so a cell (and a ``Stack`` of them) belongs to one thread at a
    time; make one per thread to run several.
    """

    cell = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        dtype=np.float32,
        backend: str = "c",
        seed: int | None = None,
    ):
        input_size = self.input_size = check_int("input_size", input_size)
        hidden_size = self.hidden_size = check_int("hidden_size", hidden_size)
        output_size = self.output_size = check_int("output_size", output_size, optional=True)
        self.dtype = check_float_dtype("dtype", dtype)
        self.kernels = kernels(backend)
        self.backend = backend
        one_layer = layer_shapes(self.cell, input_size, hidden_size, 1)
        shapes = [(name.removesuffix(".0"), shape) for name, shape in one_layer]
        if output_size is not None:
            shapes += [("W_y", (hidden_size, output_size)), ("b_y", (output_size,))]
        self.params = Params.empty(shapes, self.dtype)
        bound = 1.0 / math.sqrt(hidden_size)
        self.params.flat[...] = np.random.default_rng(seed).uniform(
            -bound, bound, self.params.flat.size
        )
        p = self.params
        self._weights = [LayerWeights(p["W_x"], p["W_h"], p["b"], p.get("b_hn"))]
        self.reset()

    def reset(self) -> None:
        """Forget the hidden state; the next step starts from zeros."""
        self.h = None
        self.c = None

    def step(self, x) -> np.ndarray:
        """Advance the state by one step of input x (I,) or (B, I); returns y (or h)."""
        vector = np.ndim(x) == 1
        shape = (self.input_size,) if vector else ("B", self.input_size)
        x = check_array("x", x, shape, self.dtype)
        X = x.reshape(1, -1, self.input_size)
        B = X.shape[1]
        if self.h is None:
            self.h = np.zeros((B, self.hidden_size), self.dtype)
            self.c = np.zeros((B, self.hidden_size), self.dtype)
        elif self.h.shape[0] != B:
            raise ValueError(
                f"x: expected a batch of {self.h.shape[0]} like the steps before "
                f"(or reset() first), got {B}"
            )
        bufs = stack.Buffers.allocate(self.cell, 1, B, self.hidden_size, 1, self.dtype)
        stack.forward(self.kernels, bufs, X, self._weights, self.h[None], self.c[None])
        self.h = bufs.hs[0][0]
        if self.cell == "lstm":
            self.c = bufs.cs[0][0]
        if self.output_size is None:
            y = self.h.copy()
        else:
            y = np.empty((B, self.output_size), self.dtype)
            self.kernels.linear_forward(y, self.h, self.params["W_y"], self.params["b_y"])
        return y[0] if vector else y


class RNN(_Cell):
    """Vanilla RNN cell, stateful:  h = tanh(x W_x + h W_h + b);  y = h W_y + b_y."""

    cell = "rnn"


class LSTM(_Cell):
    """LSTM cell, stateful (gates i, f, g, o; see ``reference.lstm_forward``); y = h W_y + b_y."""

    cell = "lstm"


class GRU(_Cell):
    """GRU cell, stateful (gates r, z, n, PyTorch's; see ``reference.gru_forward``), with the
    parameters W_x (I, 3H), W_h (H, 3H), b (3H,), b_hn (H,); y = h W_y + b_y."""

    cell = "gru"


class Stack:
    """Cells in series: layer k + 1 reads layer k's output, ``y = stack.step(x)``."""

    def __init__(self, *cells: _Cell):
        if not cells:
            raise ValueError("Stack: expected at least one cell")
        for below, above in zip(cells, cells[1:], strict=False):
            width = below.output_size or below.hidden_size
            if above.input_size != width:
                raise ValueError(
                    f"Stack: a cell with input_size {above.input_size} cannot read "
                    f"the {width}-wide output of the cell below it"
                )
        self.cells = cells

    def step(self, x) -> np.ndarray:
        for cell in self.cells:
            x = cell.step(x)
        return x

    def reset(self) -> None:
        for cell in self.cells:
            cell.reset()
