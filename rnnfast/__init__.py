"""rnnfast: character-level RNN, LSTM and GRU language models on the CPU, with fused C kernels.

    model = rnnfast.CharLM(vocab, cell="lstm", hidden_size=256, num_layers=2)
    opt = rnnfast.Adam(model, lr=2e-3)
    loss, state = model.train_step(x, y, opt, state)
    text = model.sample(200, prime="ROMEO:", temperature=0.8, seed=0)

``rnnfast.reference`` holds the same classes over plain NumPy kernels.
"""

from .threads import _spin_briefly

with _spin_briefly():  # OpenMP reads its wait policy once, when the extension loads it
    from . import cs231n, layers, reference  # noqa: F401  (the submodules are public)
from .core import Params, State
from .data import Batches, Vocab, builtin_corpus, load_text, split
from .model import GRU, LSTM, RNN, CharLM, Stack
from .optim import SGD, Adagrad, Adam, Optimizer, RMSProp
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "GRU", "LSTM", "RNN", "SGD", "Adagrad", "Adam", "Batches", "CharLM", "Optimizer", "Params",
    "RMSProp", "Stack", "State", "Vocab", "builtin_corpus", "get_num_threads", "load_text",
    "reference", "set_num_threads", "split",
]  # fmt: skip
