"""The command line: ``python -m rnnfast train | sample | eval | serve | info | viz`` (also the
``rnnfast`` console script).

    python -m rnnfast train --time 60                  # the built-in corpus, checkpoints in runs/
    python -m rnnfast sample runs --prime "def " --temperature 0.8 --seed 0
    python -m rnnfast sample runs --prime "def " --beam 5 --length 20   # the 5 likeliest
    python -m rnnfast eval runs
    python -m rnnfast serve runs --port 8000           # HTTP JSON API: rnnfast.serve
    python -m rnnfast info runs
    python -m rnnfast viz runs --text input.txt --out page.html   # what each unit tracks
    mpiexec -n 4 rnnfast train --data input.txt        # data parallel, see rnnfast.distributed

Wherever a command takes CHECKPOINT, a training directory (its latest.npz), a checkpoint file and
``runs/latest`` (for runs/latest.npz) all work.  Bad input (a missing or damaged file, an unknown
character, impossible settings) prints one line on stderr and exits with status 2; a diverged
training exits with 1 and Ctrl-C with 130, after saving a checkpoint (``serve`` stops on SIGTERM
or Ctrl-C with 0).  Under mpiexec rank 0 alone prints and writes; a rank that gives up on the
others exits with 3.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np

EXIT_USAGE = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130
LN2 = math.log(2.0)


class UserError(ValueError):
    """Bad input from the user: reported in one line, exit status 2."""


# -- argument types --------------------------------------------------------------------------


def _number(kind, what: str, *, allow_zero: bool = False):
    """An argparse type: a finite ``kind`` (int or float) above zero, or at least zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, "a positive integer")
_non_negative_int = _number(int, "a non-negative integer", allow_zero=True)
_positive_float = _number(float, "a positive number")


def _unit_interval(with_zero: bool):
    """An argparse type: a number in [0, 1) (``with_zero``) or in (0, 1]."""
    what = "[0, 1)" if with_zero else "(0, 1]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (0 <= value < 1 if with_zero else 0 < value <= 1):
            raise argparse.ArgumentTypeError(f"expected a number in {what}, got {text!r}")
        return value

    return parse


_fraction = _unit_interval(with_zero=True)  # dropout, momentum
_mass = _unit_interval(with_zero=False)  # a nucleus's probability


def build_parser() -> argparse.ArgumentParser:
    from .distributed import DEFAULT_TIMEOUT
    from .serve import Limits

    parser = argparse.ArgumentParser(
        prog="rnnfast", description="Character-level RNN/LSTM/GRU language models on the CPU."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = commands.add_parser(
        "train",
        help="train a model (on the built-in corpus unless --data is given)",
        description="Train a character-level model. Checkpoints go to --out: latest.npz (at each "
        "validation, at the end and on Ctrl-C) and best.npz (lowest validation "
        "loss), with history.csv, history.json and loss.png.",
    )
    t.add_argument(
        "--data",
        metavar="FILE",
        help="a UTF-8 text file (default: the built-in corpus, Python standard-library source)",
    )
    t.add_argument("--cell", choices=("lstm", "rnn", "gru"), help="default lstm")
    t.add_argument("--hidden-size", type=_positive_int, metavar="N", help="default 128")
    t.add_argument("--num-layers", type=_positive_int, metavar="N", help="default 2")
    t.add_argument(
        "--dropout",
        type=_fraction,
        metavar="P",
        help="inverted dropout on every layer's output in training, in [0, 1) (default 0)",
    )
    t.add_argument("--batch-size", type=_positive_int, metavar="N", help="default 50")
    t.add_argument("--seq-length", type=_positive_int, metavar="N", help="default 50")
    t.add_argument(
        "--optimizer",
        choices=("adam", "rmsprop", "adagrad", "sgd"),
        help="default adam",
    )
    t.add_argument(
        "--lr",
        type=_positive_float,
        metavar="X",
        help="learning rate (default: 2e-3 adam/rmsprop, 0.1 adagrad/sgd)",
    )
    t.add_argument(
        "--lr-decay",
        type=_positive_float,
        metavar="X",
        help="multiply the learning rate by X every --lr-decay-every steps",
    )
    t.add_argument(
        "--lr-decay-every",
        type=_non_negative_int,
        metavar="N",
        help="steps between decays (default 0: never)",
    )
    t.add_argument(
        "--clip",
        type=_positive_float,
        metavar="X",
        help="clip each gradient element to [-X, X] (default 5)",
    )
    t.add_argument(
        "--max-norm",
        type=_positive_float,
        metavar="X",
        help="scale the gradient down to a global norm of at most X (default: no limit)",
    )
    t.add_argument(
        "--momentum",
        type=_fraction,
        metavar="X",
        help="momentum of --optimizer sgd (default 0.9)",
    )
    stop = t.add_mutually_exclusive_group()
    stop.add_argument(
        "--steps",
        type=_positive_int,
        metavar="N",
        help="train until N steps in all, counted from the start of training",
    )
    stop.add_argument(
        "--epochs",
        type=_positive_int,
        metavar="N",
        help="train until N epochs in all (the default is 1)",
    )
    stop.add_argument(
        "--time", type=_positive_float, metavar="SECONDS", help="train for this many seconds"
    )
    t.add_argument(
        "--val-every",
        type=_positive_int,
        metavar="N",
        help="validate and checkpoint every N steps (default 250)",
    )
    t.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: runs, or the directory of --resume)",
    )
    t.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue a training exactly from a checkpoint file or directory",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if --out already holds a checkpoint",
    )
    t.add_argument(
        "--seed", type=int, default=None, help="initial weights and the final sample (default 0)"
    )
    t.add_argument("--dtype", choices=("float32", "float64"), help="default float32")
    t.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="threads of the kernels and of BLAS (under mpiexec: per process, default the cores / "
        "processes per host)",
    )
    t.add_argument(
        "--mpi-timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="under mpiexec: how long a process waits for the others before it stops the run "
        "(a process died or hangs; default 600)",
    )
    t.add_argument("--backend", choices=("c", "numpy"), help="kernels (default: the library's)")
    t.add_argument(
        "--sample-length",
        type=_non_negative_int,
        default=200,
        metavar="N",
        help="characters of sample printed at the end (default 200, 0: none)",
    )
    t.set_defaults(func=cmd_train)

    s = commands.add_parser(
        "sample",
        help="generate text from a checkpoint",
        description="Stream generated text to stdout.",
    )
    s.add_argument("checkpoint", metavar="CHECKPOINT")
    prime = s.add_mutually_exclusive_group()
    prime.add_argument("--prime", default="", metavar="TEXT", help="text to start from")
    prime.add_argument("--prime-file", metavar="FILE", help="read the prime text from a file")
    s.add_argument(
        "--length",
        type=_non_negative_int,
        default=500,
        metavar="N",
        help="characters to generate after the prime (default 500)",
    )
    s.add_argument(
        "--temperature", type=_positive_float, metavar="X", help="of the softmax (default 1)"
    )
    s.add_argument(
        "--top-k", type=_positive_int, metavar="K", help="draw only from the K likeliest characters"
    )
    s.add_argument(
        "--top-p",
        type=_mass,
        metavar="P",
        help="draw only from the fewest likeliest characters whose probability reaches P "
        "(nucleus sampling; after --top-k)",
    )
    s.add_argument("--argmax", action="store_true", help="always take the likeliest character")
    s.add_argument(
        "--seed",
        type=int,
        default=None,
        help="same seed, same text (sample i of --num-samples uses seed + i)",
    )
    s.add_argument("--num-samples", type=_positive_int, metavar="N", help="default 1")
    s.add_argument(
        "--beam",
        type=_positive_int,
        metavar="N",
        help="instead of drawing, print the N likeliest continuations by beam search, one a "
        "line: the natural-log probability, a tab, prime + continuation as a JSON string",
    )
    s.add_argument(
        "--skip-unknown",
        action="store_true",
        help="drop prime characters the model does not know, with a warning",
    )
    _add_model_options(s)
    s.set_defaults(func=cmd_sample)

    e = commands.add_parser(
        "eval",
        help="loss on the validation split or a text file",
        description="Nats and bits per character on the checkpoint's "
        "validation split (the last 10%% of its training text) "
        "or on a whole file.",
    )
    e.add_argument("checkpoint", metavar="CHECKPOINT")
    e.add_argument("--data", metavar="FILE", help="evaluate on this whole file instead")
    _add_model_options(e)
    e.set_defaults(func=cmd_eval)

    v = commands.add_parser(
        "serve",
        help="an HTTP JSON API over a checkpoint (docs/serve.md)",
        description="Serve POST /generate and GET /info until SIGTERM or Ctrl-C; concurrent "
        "requests are drawn together. Prints the address it listens on to stdout.",
    )
    v.add_argument("checkpoint", metavar="CHECKPOINT")
    v.add_argument(
        "--host", default="127.0.0.1", help="default 127.0.0.1: connections from this machine only"
    )
    v.add_argument(
        "--port", type=_non_negative_int, default=8000, help="default 8000; 0: any free port"
    )
    limits = {  # their defaults are rnnfast.serve.Limits'
        "max_body": (_positive_int, "BYTES", "largest request body (larger: 413)"),
        "max_length": (_non_negative_int, "N", "most characters a request may ask for (more: 400)"),
        "max_queue": (_positive_int, "N", "requests waiting to be drawn (one more: 503)"),
        "max_streams": (_positive_int, "N", "streams drawn at once"),
        "timeout": (_positive_float, "SECONDS", "time a client has to send its body (then 408) "
                    "and for any read or write"),
    }  # fmt: skip
    for name, (kind, metavar, text) in limits.items():
        v.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(Limits, name),
                       metavar=metavar, help=f"{text}; default %(default)s")  # fmt: skip
    _add_model_options(v)
    v.set_defaults(func=cmd_serve)

    i = commands.add_parser("info", help="describe a checkpoint")
    i.add_argument("checkpoint", metavar="CHECKPOINT")
    i.add_argument("--json", action="store_true", help="print the metadata as JSON")
    i.set_defaults(func=cmd_info)

    v = commands.add_parser(
        "viz",
        help="a page of a text coloured by what a unit tracks",
        description="Write one self-contained HTML page (it opens offline) of a text coloured by "
        "a unit's hidden state, with a picker of the units that track --feature best, the "
        "likeliest next characters on hover and a view of the per-character loss.",
    )
    v.add_argument("checkpoint", metavar="CHECKPOINT")
    v.add_argument("--text", required=True, metavar="FILE", help="a UTF-8 text file to show")
    v.add_argument("--out", required=True, metavar="FILE", help="the HTML page to write")
    v.add_argument(
        "--unit",
        metavar="L:K",
        help="colour by unit K of layer L (default: the unit that tracks the feature best)",
    )
    what = v.add_mutually_exclusive_group()
    what.add_argument(
        "--feature",
        metavar="NAME",
        help="rank the units by how well they track quotes (the default), brackets, "
        "line_position, indent, comment or word_start",
    )
    what.add_argument(
        "--regex", metavar="RE", help="rank the units by how well they track RE's matches"
    )
    v.add_argument(
        "--max-chars",
        type=_positive_int,
        default=100_000,
        metavar="N",
        help="show the first N characters of the text (default 100000)",
    )
    v.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_model_options(v)
    v.set_defaults(func=cmd_viz)
    return parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="convert the model (default: the checkpoint's)",
    )
    p.add_argument("--backend", choices=("c", "numpy"), help="kernels (default: the library's)")
    p.add_argument(
        "--threads", type=_positive_int, metavar="N", help="threads of the kernels and of BLAS"
    )


# -- commands --------------------------------------------------------------------------------


def _log(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)  # above a running progress bar, if any


def _threads(n):
    """The kernels' threads and every BLAS's at n (None: as they are).  The extension is loaded
    first: threadpoolctl reaches only the OpenMP and BLAS libraries already loaded."""
    if not n:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    from .backends import extension

    extension()
    return threadpool_limits(limits=n)


def _read_text(path) -> str:
    from .data import load_text

    return load_text(path)


def _data_name(path: str) -> str:
    """How a checkpoint names a data file: the path as given when relative, else its name."""
    p = Path(path)
    return p.name if p.is_absolute() else p.as_posix()


def _relative_to(data_arg: str, out: Path) -> str | None:
    """The data file's path relative to the checkpoint directory (no absolute path is stored)."""
    try:
        return Path(os.path.relpath(Path(data_arg).resolve(), out.resolve())).as_posix()
    except ValueError:  # another drive
        return None


def _training_text(data: dict, data_arg: str | None, checkpoint_dir: Path) -> tuple[str, str]:
    """The training text of a checkpoint (from its data description) and its name: --data if
    given, else the file found relative to the checkpoint, else as named from here."""
    from .data import builtin_corpus

    if data_arg is not None:
        return _read_text(data_arg), _data_name(data_arg)
    name = data.get("name")
    if name == "builtin":
        return builtin_corpus(), "builtin"
    relative = data.get("path_from_checkpoint")
    if relative and (checkpoint_dir / relative).is_file():
        return _read_text(checkpoint_dir / relative), name
    if name and Path(name).is_file():
        return _read_text(name), name
    raise UserError(f"the checkpoint was trained on {name!r}, which is not here; pass --data FILE")


_ARCHITECTURE = {
    "cell": "cell",
    "hidden_size": "hidden-size",
    "num_layers": "num-layers",
    "dropout": "dropout",
    "batch_size": "batch-size",
    "seq_length": "seq-length",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "dtype": "dtype",
}


def _setup_training(args, log, parallel):
    """The Trainer a ``train`` command asks for, new or resumed, and its output directory."""
    from . import checkpoint
    from .data import builtin_corpus
    from .training import RESUME_OVERRIDES, TrainConfig, Trainer

    schedule = [key for key in RESUME_OVERRIDES if hasattr(args, key)]  # those with a flag
    if args.momentum is not None and (args.optimizer or "adam") != "sgd" and not args.resume:
        raise UserError("--momentum applies to --optimizer sgd only")
    if args.resume is not None:
        path = checkpoint.resolve(args.resume)
        meta, _ = checkpoint.read(path)
        training = meta.get("training") or {}
        saved = training.get("config")
        if saved is None:
            raise UserError(f"{path} holds no training state; it cannot be resumed")
        for key, flag in _ARCHITECTURE.items():
            given = getattr(args, key)
            if given is not None and given != saved.get(key):
                raise UserError(
                    f"--{flag} {given} differs from the checkpoint's "
                    f"{saved.get(key)}; a resumed training keeps its model, "
                    "batches and optimizer"
                )
        out = Path(args.out) if args.out else path.parent
        text, name = _training_text(training.get("data", {}), args.data, path.parent)
        overrides = {key: getattr(args, key) for key in schedule}
        trainer = Trainer.resume(
            path, text, out_dir=out, data_name=name, log=log, parallel=parallel, **overrides
        )
        data_arg = args.data or (training.get("data") or {}).get("path_from_checkpoint")
        if data_arg and name != "builtin":
            if args.data is None:  # carry the saved path over, re-anchored on the new --out
                data_arg = str(path.parent / data_arg)
            trainer.data["path_from_checkpoint"] = _relative_to(data_arg, out)
        log(f"resuming {path} at step {trainer.step} (epoch {trainer.epoch})")
        return trainer, out
    out = Path(args.out or "runs")
    if (out / checkpoint.LATEST).exists() and not args.overwrite:
        raise UserError(
            f"{out / checkpoint.LATEST} exists: continue it with --resume {out}, or pass "
            "--overwrite or another --out"
        )
    if args.data is None:
        text, name = builtin_corpus(), "builtin"
    else:
        text, name = _read_text(args.data), _data_name(args.data)
    given = {key: getattr(args, key) for key in (*_ARCHITECTURE, *schedule)}
    given["seed"] = args.seed
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None})
    trainer = Trainer(text, config, out_dir=out, data_name=name, log=log, parallel=parallel)
    if args.data is not None:
        trainer.data["path_from_checkpoint"] = _relative_to(args.data, out)
    return trainer, out


def _silent(message: str) -> None:
    """The log of the ranks other than 0."""


def cmd_train(args) -> int:
    from . import checkpoint, distributed
    from .training import TrainingDiverged

    try:
        parallel = distributed.from_environment(timeout=args.mpi_timeout)
    except ImportError as err:
        raise UserError(str(err)) from None
    threads = args.threads
    if parallel is None:
        log = _log
        with _threads(threads):
            trainer, out = _setup_training(args, log, None)
    else:  # under mpiexec: rank 0 speaks, and every rank starts or none does
        log = _log if parallel.rank == 0 else _silent
        threads = threads or max(1, len(os.sched_getaffinity(0)) // parallel.local_size)
        failure = None
        try:
            with _threads(threads):
                trainer, out = _setup_training(args, log, parallel)
        except (ValueError, OSError) as err:
            failure = err
        parallel.agree_on_failure(failure)

    epochs = args.epochs
    if args.steps is None and args.epochs is None and args.time is None:
        epochs = 1
    if (args.steps is not None and trainer.step >= args.steps) or (
        epochs is not None and trainer.epoch >= epochs
    ):
        log(
            f"nothing to do: the checkpoint is at step {trainer.step}, epoch {trainer.epoch}; "
            "ask for more with --steps, --epochs or --time"
        )
        return 0
    with _threads(threads):
        try:
            reason = trainer.train(
                steps=args.steps, epochs=epochs, seconds=args.time, progress=True
            )
        except (TrainingDiverged, distributed.RanksOutOfSync) as err:
            if parallel is None or parallel.rank == 0:
                print(f"rnnfast train: {err}", file=sys.stderr)
            return EXIT_DIVERGED
        except OSError as err:
            if parallel is None:
                raise
            # rank 0 alone writes: the other ranks would wait for it in vain
            print(f"rnnfast train: error: rank {parallel.rank}: {err}", file=sys.stderr)
            parallel.abort(EXIT_USAGE)
        log(f"checkpoint: {out / checkpoint.LATEST} (step {trainer.step})")
        if trainer.best_val_step >= 0:
            log(
                f"best: {out / checkpoint.BEST} (val loss {trainer.best_val_loss:.4f} at step "
                f"{trainer.best_val_step})"
            )
        if (out / "loss.png").exists():
            log(f"loss curve: {out / 'loss.png'}")
        else:
            log(
                f'history: {out / "history.csv"}; for a loss-curve PNG: pip install "rnnfast[plot]"'
            )
        if reason == "interrupted":
            return EXIT_INTERRUPTED
        if args.sample_length and (parallel is None or parallel.rank == 0):
            log(f"sample ({args.sample_length} characters, seed {trainer.config.seed}):")
            _stream(
                trainer.model,
                np.empty(0, np.int64),
                "",
                args.sample_length,
                seed=trainer.config.seed if args.seed is None else args.seed,
            )
    return 0


def _stream(
    model,
    prime_ids,
    prime_text: str,
    length: int,
    *,
    temperature=1.0,
    top_k=None,
    argmax=False,
    seed=None,
    top_p=None,
) -> None:
    """Write prime + generated text to stdout as it is generated, then a newline."""
    from .sampling import iter_sample

    out = sys.stdout
    out.write(prime_text)
    out.flush()
    for chunk in iter_sample(
        model,
        length,
        prime_ids,
        temperature=temperature,
        top_k=top_k,
        argmax=argmax,
        seed=seed,
        num_samples=1,
        top_p=top_p,
    ):
        out.write(model.vocab.decode(chunk[:, 0]))
        out.flush()
    out.write("\n")
    out.flush()


def _load(path, args):
    from . import checkpoint

    return checkpoint.load(path, dtype=args.dtype, backend=args.backend)


def cmd_sample(args) -> int:
    from .data import char_listing

    ck = _load(args.checkpoint, args)
    vocab = ck.model.vocab
    prime = _read_text(args.prime_file) if args.prime_file else args.prime
    unknown = vocab.unknown(prime)
    if unknown and not args.skip_unknown:
        raise UserError(
            f"the prime has {len(unknown)} character(s) not in the model's "
            f"vocabulary: {char_listing(unknown)} (--skip-unknown drops them)"
        )
    prime_ids = vocab.encode(prime, skip_unknown=args.skip_unknown)  # warns about any dropped
    prime_text = vocab.decode(prime_ids)
    if args.beam is not None:
        return _beam(ck.model, prime_text, args)
    with _threads(args.threads):
        for i in range(args.num_samples or 1):
            if i:
                sys.stdout.write("\n")
            _stream(
                ck.model,
                prime_ids,
                prime_text,
                args.length,
                temperature=1.0 if args.temperature is None else args.temperature,
                top_k=args.top_k,
                argmax=args.argmax,
                seed=None if args.seed is None else args.seed + i,
                top_p=args.top_p,
            )
    return 0


def _beam(model, prime_text: str, args) -> int:
    """``rnnfast sample --beam N``: the N likeliest continuations, with their logprobs."""
    import json

    draw_options = {
        "--temperature": args.temperature is not None,
        "--top-k": args.top_k is not None,
        "--top-p": args.top_p is not None,
        "--argmax": args.argmax,
        "--seed": args.seed is not None,
        "--num-samples": args.num_samples is not None,
    }
    given = [flag for flag, present in draw_options.items() if present]
    if given:
        raise UserError(f"--beam searches, it does not draw: drop {', '.join(given)}")
    with _threads(args.threads):
        found = model.beam_search(args.length, prime_text, args.beam)
    for text, logprob in found:
        sys.stdout.write(f"{logprob:.6f}\t{json.dumps(text, ensure_ascii=False)}\n")
    sys.stdout.flush()
    return 0


def cmd_serve(args) -> int:
    import signal
    import threading
    from dataclasses import fields

    from .serve import Limits, Server

    ck = _load(args.checkpoint, args)
    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    try:
        server = Server(ck.model, args.host, args.port, limits=limits, threads=args.threads,
                        log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    except OSError as err:
        raise UserError(
            f"cannot listen on {args.host}:{args.port}: {err.strerror or err}"
        ) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with server:
        print(f"serving {ck.path} on {server.url}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:  # Ctrl-C: the usual way to stop a server, not a failure
            pass
        print("stopping: answering the requests not yet drawn with 503", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from .data import char_listing, split
    from .training import TrainConfig, data_description, evaluate

    ck = _load(args.checkpoint, args)
    vocab = ck.model.vocab
    config = ck.training.get("config") or {}
    if args.data is not None:
        text = _read_text(args.data)
        what = f"{args.data}"
    else:
        data = ck.training.get("data") or {}
        text, name = _training_text(data, None, ck.path.parent)
        if data_description(text, name)["sha256"] != data.get("sha256"):
            warnings.warn(
                f"{name!r} differs from the text the checkpoint was trained on", stacklevel=1
            )
        what = f"the validation split of {name}"
    unknown = vocab.unknown(text)
    if unknown:
        raise UserError(
            f"the text has {len(unknown)} character(s) not in the model's vocabulary: "
            f"{char_listing(unknown)}"
        )
    ids = vocab.encode(text)
    if args.data is None:
        _, ids = split(ids, TrainConfig.from_dict(config).val_fraction if config else 0.1)
    with _threads(args.threads):
        loss = evaluate(ck.model, ids)
    print(
        f"{loss:.4f} nats/char  {loss / LN2:.4f} bits/char  ({len(ids) - 1:,} characters of "
        f"{what}, step {ck.step})"
    )
    return 0


def cmd_info(args) -> int:
    import json

    from . import checkpoint

    path = checkpoint.resolve(args.checkpoint)
    meta, arrays = checkpoint.read(path)
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    ck = checkpoint.load(path)
    m, tr = meta["model"], ck.training
    config = tr.get("config") or {}
    lines = [
        f"checkpoint   {path} (format version {meta['format_version']}, written by rnnfast "
        f"{meta.get('rnnfast_version', '?')})",
        f"model        {m['cell']}, hidden_size {m['hidden_size']}, num_layers "
        f"{m['num_layers']}, {m['dtype']}, {ck.model.num_params:,} parameters"
        + (f", dropout {ck.model.dropout:g}" if ck.model.dropout else ""),
        f"vocabulary   {m['vocab_size']} characters",
    ]
    if ck.optimizer is not None:
        lines.append(f"optimizer    {ck.optimizer!r}, {ck.optimizer.step_count} updates")
    if tr:
        data = tr.get("data") or {}
        lines.append(
            f"training     step {tr.get('step')}, epoch {tr.get('epoch')}, batch "
            f"{tr.get('batch_index')} of {tr.get('steps_per_epoch')}; batch_size "
            f"{config.get('batch_size')}, seq_length {config.get('seq_length')}, lr "
            f"{tr.get('lr'):.4g}"
        )
        lines.append(f"data         {data.get('name')} ({data.get('chars', 0):,} characters)")
    h = ck.history
    if len(h.get("train_loss", ())):
        lines.append(f"train loss   {h['train_loss'][-1]:.4f} nats/char at step {h['step'][-1]}")
    if len(h.get("val_loss", ())):
        v = h["val_loss"][-1]
        lines.append(
            f"val loss     {v:.4f} nats/char ({v / LN2:.4f} bits/char) at step "
            f"{h['val_step'][-1]}; best {tr.get('best_val_loss', math.nan):.4f} at "
            f"step {tr.get('best_val_step')}"
        )
    print("\n".join(lines))
    return 0


def _parse_unit(text: str) -> tuple[int, int]:
    """``L:K`` as (layer, index); anything else is a UserError."""
    layer, sep, index = text.partition(":")
    if not (sep and layer.strip().isdigit() and index.strip().isdigit()):
        raise UserError(f"--unit: expected LAYER:INDEX, e.g. 0:12, got {text!r}")
    return int(layer), int(index)


def cmd_viz(args) -> int:
    from . import inspect, viz

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists: pass --overwrite or another --out")
    if args.feature is not None and args.feature not in inspect.FEATURES:
        raise UserError(
            f"--feature: expected one of {', '.join(inspect.FEATURES)}, got {args.feature!r} "
            "(--regex RE ranks by a pattern)"
        )
    feature = args.regex if args.regex is not None else args.feature or "quotes"
    unit = None if args.unit is None else _parse_unit(args.unit)
    ck = _load(args.checkpoint, args)
    model = ck.model
    if unit is not None:
        inspect.check_unit(unit, model.num_layers, model.hidden_size)
    text = _read_text(args.text)
    if len(text) > args.max_chars:
        _log(f"showing the first {args.max_chars:,} of {len(text):,} characters (--max-chars)")
        text = text[: args.max_chars]
    inspect.feature_values(text, feature)  # a bad regex fails before the model runs
    with _threads(args.threads):
        acts = inspect.activations(model, text, gates=False)
    units = inspect.search_units(acts, feature, top=10)
    title = f"rnnfast viz: {ck.path.name}, {Path(args.text).name}"
    page = viz.render_page(acts, unit=unit, feature=feature, units=units, title=title)
    out.write_text(page, encoding="utf-8")
    what = inspect.describe(feature)
    print(f"units that track {what} (correlation over {len(text):,} characters):")
    for u in units:
        print(f"  {u.layer}:{u.unit:<6d} {u.score:+.3f}")
    layer, index = unit or units[0][:2]
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB), coloured by unit {layer}:{index}")
    return 0


# -- entry point -----------------------------------------------------------------------------


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit status (0 ok, 1 diverged, 2 bad input, 130 Ctrl-C)."""
    from .checkpoint import CheckpointError
    from .distributed import launched_rank

    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args) or 0
        except (CheckpointError, UserError, ValueError, OSError) as err:
            if isinstance(err, BrokenPipeError):
                _silence_stdout()
                return 0
            if isinstance(err, OSError) and err.strerror and getattr(err, "filename", None):
                message = f"{err.strerror}: {err.filename}"
            else:
                message = str(err)
            message = " ".join(message.split())  # one line
            if launched_rank() == 0:  # under mpiexec every rank has it; rank 0 says it
                print(f"rnnfast {args.command}: error: {message}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"rnnfast {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """After the reader of a pipe went away (``| head``), keep Python's exit flush quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
