"""An HTTP JSON API over one model, ``rnnfast serve RUN`` (docs/serve.md)::

    POST /generate  {"prime": "def ", "length": 200, "temperature": 0.8, "top_k": null,
                     "top_p": null, "seed": 0, "stream": false}
                    -> {"text": prime + generated, "seed": 0}, or with "stream": true NDJSON
                       lines {"text": piece} as they are drawn, the prime first
    GET  /info      the model's configuration and vocabulary, and the limits

The standard library's ``ThreadingHTTPServer`` runs one thread a connection: it reads and checks
a request, feeds its prime (``CharLM.forward``, one stream, as ``model.sample`` does) and
queues a job.  One worker thread does all the drawing: at every chunk boundary it lets the
finished and abandoned streams go, takes in every queued job (up to ``max_streams`` streams in
all), and draws CHUNK characters of every stream with one ``Sampler.draw`` per set of options
(temperature, top_k, top_p), the streams of a set side by side (``Sampler.select`` and
``Sampler.concatenate``).  Stream s of a call draws with uniforms from its own request's
``numpy.random.default_rng(seed)``, in ``rnnfast.sampling.iter_sample``'s order, so a seeded
request gets the text ``model.sample`` returns for the same arguments (docs/serve.md says how far
that holds bit for bit).
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from .data import char_listing
from .model import CharLM, Sampler
from .validation import INDEX_DTYPE, check_finite, check_int, check_real

CHUNK = 64  # characters a stream draws per sampler call: streamed pieces, and when jobs join
FIELDS = ("prime", "length", "temperature", "top_k", "top_p", "seed", "stream")


@dataclass(frozen=True)
class Limits:
    """What one request, and the server, may take.

    Attributes
    ----------
    max_body : int
        Bytes of a request body (more: 413).
    max_length : int
        Characters a request may ask for (more: 400).
    max_queue : int
        Requests waiting for the worker (one more: 503).
    max_streams : int
        Streams drawn at once, over all sets of options; more requests wait in the queue.
    timeout : float
        Seconds a client may take to send its body (then 408), and any one read or write on
        its connection (then it is closed).
    """

    max_body: int = 64 * 1024
    max_length: int = 10_000
    max_queue: int = 256
    max_streams: int = 64
    timeout: float = 10.0

    def __post_init__(self):
        check_int("max_body", self.max_body)
        check_int("max_length", self.max_length, minimum=0)
        check_int("max_queue", self.max_queue)  # 0 would make queue.Queue unbounded
        check_int("max_streams", self.max_streams)
        check_real("timeout", self.timeout)


class RequestError(Exception):
    """An answer other than 200: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, " ".join(message.split())


def _shown(value) -> str:
    """A JSON value as a message quotes it: one line, at most about 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:36] + " ..."


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_request(body: bytes, limits: Limits) -> dict:
    """The fields of a /generate body, checked, with their defaults filled in.

    Parameters
    ----------
    body : bytes
        A UTF-8 JSON object with ``length`` and any of the other FIELDS.
    limits : Limits

    Returns
    -------
    dict
        Every one of FIELDS.

    Raises
    ------
    RequestError
        400, naming the first thing wrong.
    """
    try:
        request = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the body is not UTF-8: {err}") from None
    except ValueError as err:  # JSONDecodeError, or an integer of too many digits
        raise RequestError(400, f"malformed JSON: {err}") from None
    if not isinstance(request, dict):
        raise RequestError(400, f"expected a JSON object, got {_shown(request)}")
    unknown = sorted(request.keys() - set(FIELDS))
    if unknown:
        raise RequestError(
            400, f"unknown field(s) {char_listing(unknown)}; expected some of {', '.join(FIELDS)}"
        )
    if "length" not in request:
        raise RequestError(400, "length: required")
    r = {"prime": "", "temperature": 1.0, "top_k": None, "top_p": None, "seed": None,
         "stream": False, **request}  # fmt: skip

    def bad(name: str, expected: str):
        raise RequestError(400, f"{name}: expected {expected}, got {_shown(r[name])}")

    if not isinstance(r["prime"], str):
        bad("prime", "a string")
    if not (_is_integer(r["length"]) and 0 <= r["length"] <= limits.max_length):
        bad("length", f"an integer from 0 to {limits.max_length}")
    try:
        temperature = float(r["temperature"]) if _is_number(r["temperature"]) else math.nan
    except OverflowError:  # an integer beyond float's range
        temperature = math.nan
    if not 0 < temperature < math.inf:
        bad("temperature", "a positive finite number")
    if r["top_k"] is not None and not (_is_integer(r["top_k"]) and r["top_k"] >= 1):
        bad("top_k", "a positive integer or null")
    if r["top_p"] is not None and not (_is_number(r["top_p"]) and 0 < r["top_p"] <= 1):
        bad("top_p", "a number in (0, 1] or null")
    if r["seed"] is not None and not (_is_integer(r["seed"]) and r["seed"] >= 0):
        bad("seed", "a non-negative integer or null")
    if not isinstance(r["stream"], bool):
        bad("stream", "true or false")
    r["temperature"] = temperature
    if r["top_p"] is not None:
        r["top_p"] = float(r["top_p"])
    return r


class _Job:
    """One request's stream: its start (a one-stream Sampler), its generator of uniforms, the
    characters it still wants, and what it has drawn, read by its handler thread.

    The worker puts str pieces on ``pieces`` (for a streamed request each chunk, else the
    whole text at the end: every piece wakes the handler thread, which then takes the GIL the
    worker needs), then None when the stream is done, or a RequestError when it was
    cancelled; the handler sets ``abandoned`` when its client left."""

    def __init__(self, sampler: Sampler, rng: np.random.Generator, remaining: int, options,
                 stream: bool):  # fmt: skip
        self.sampler, self.rng, self.remaining, self.options = sampler, rng, remaining, options
        self.stream, self.drawn = stream, []
        self.pieces: queue.SimpleQueue = queue.SimpleQueue()
        self.abandoned = False

    def add(self, piece: str) -> None:
        if self.stream:
            self.pieces.put(piece)
        else:
            self.drawn.append(piece)

    def finish(self) -> None:
        if self.drawn:
            self.pieces.put("".join(self.drawn))
        self.pieces.put(None)

    def results(self) -> Iterator[str]:
        """The pieces as they come; raises the RequestError of a cancelled job."""
        while (piece := self.pieces.get()) is not None:
            if isinstance(piece, RequestError):
                raise piece
            yield piece


class _Batch:
    """The streams of one set of options, drawn together by one Sampler."""

    def __init__(self):
        self.jobs: list[_Job] = []
        self.joining: list[_Job] = []
        self.sampler: Sampler | None = None

    def __len__(self) -> int:
        return len(self.jobs) + len(self.joining)

    def draw(self, model: CharLM) -> None:
        """Let the abandoned streams go, take in the joining ones, and draw the next chunk of
        every stream: up to CHUNK characters, none past what a stream wants."""
        kept = [s for s, job in enumerate(self.jobs) if not job.abandoned]
        if self.joining or len(kept) < len(self.jobs):
            parts = [self.sampler.select(kept)] if kept else []
            parts += [job.sampler for job in self.joining]
            self.jobs = [self.jobs[s] for s in kept] + self.joining
            self.sampler = Sampler.concatenate(parts) if parts else None
            self.joining = []
        if not self.jobs:
            return
        counts = [min(CHUNK, job.remaining) for job in self.jobs]
        uniforms = np.zeros((max(counts), len(self.jobs)))
        for s, (job, n) in enumerate(zip(self.jobs, counts, strict=True)):
            uniforms[:n, s] = job.rng.random(n)  # past n: draws that no one reads
        ids = self.sampler.draw(uniforms)
        for s, (job, n) in enumerate(zip(self.jobs, counts, strict=True)):
            job.add(model.vocab.decode(ids[:n, s]))
            job.remaining -= n
            if not job.remaining:
                job.finish()
        kept = [s for s, job in enumerate(self.jobs) if job.remaining]
        if len(kept) < len(self.jobs):
            self.sampler = self.sampler.select(kept) if kept else None
            self.jobs = [self.jobs[s] for s in kept]

    def cancel(self, error: RequestError) -> None:
        for job in self.jobs + self.joining:
            job.pieces.put(error)
        self.jobs, self.joining, self.sampler = [], [], None


class Server:
    """An HTTP server over one model, its requests drawn together by one worker thread.

    Parameters
    ----------
    model : CharLM
        Built from a Vocab (it writes text), with finite parameters; nothing may train it
        while it serves.
    host : str
        The address to listen on; 127.0.0.1 (the default) takes connections from this machine
        only.
    port : int
        0 picks a free port (``address`` tells which).
    limits : Limits
    threads : int or None
        The kernels' threads in the worker, which does all the drawing (None: OpenMP's
        default); the handler threads feed their primes on one thread each.
    log : callable or None
        Called with one line per request and per error (None: silent).

    Notes
    -----
    ``start()`` (or ``with Server(...) as server:``) starts the worker and the listening
    thread; ``close()`` stops taking connections, answers every request not yet drawn to the
    end with 503 (a stream: a last line {"error": ...}), waits up to ``limits.timeout`` for the
    handlers to write those answers, and closes the socket.
    """

    def __init__(
        self,
        model: CharLM,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        limits: Limits = Limits(),
        threads: int | None = None,
        log: Callable[[str], None] | None = None,
    ):
        if model.vocab is None:
            raise ValueError("model: expected one built from a Vocab (it serves text), got one "
                             "built from a vocabulary size")  # fmt: skip
        check_finite("the model's parameters", model.flat_params)
        self.model, self.limits, self.threads, self.log = model, limits, threads, log
        self._jobs: queue.Queue = queue.Queue(limits.max_queue)
        self._admitting = threading.Lock()  # a job is queued before close, or refused
        self._stopping = False
        self._busy, self._idle = 0, threading.Condition()  # requests being answered
        self._httpd = _HTTPServer((host, port), self)
        self._worker = threading.Thread(target=self._draw_forever, name="rnnfast-draw",
                                        daemon=True)  # fmt: skip
        self._listener = threading.Thread(
            target=self._httpd.serve_forever, args=(0.1,), name="rnnfast-listen", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on."""
        return self._httpd.server_address[:2]

    @property
    def url(self) -> str:
        """The server's address as a URL, ``http://host:port``."""
        host, port = self.address
        return f"http://{host}:{port}"

    def info(self) -> dict:
        """What GET /info answers."""
        m = self.model
        return {
            "cell": m.cell,
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "vocab_size": m.vocab_size,
            "num_params": m.num_params,
            "dtype": m.dtype.name,
            "backend": m.backend,
            "vocab": "".join(m.vocab.chars),
            "chunk": CHUNK,
            "limits": asdict(self.limits),
        }

    def start(self) -> Server:
        """Start the worker and the thread that takes connections; returns the server."""
        self._worker.start()
        self._listener.start()
        return self

    def close(self) -> None:
        """Stop: no new connections, 503 for every request not yet drawn to its end."""
        with self._admitting:
            self._stopping = True
        if self._listener.is_alive():
            self._httpd.shutdown()
        if self._worker.is_alive():
            try:
                self._jobs.put_nowait(None)  # wakes a waiting worker; a full queue needs none
            except queue.Full:
                pass
            self._worker.join()
        with self._idle:
            self._idle.wait_for(lambda: not self._busy, self.limits.timeout)
        self._httpd.server_close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the handler threads' side ---------------------------------------------------------

    def _answering(self, delta: int) -> None:
        with self._idle:
            self._busy += delta
            self._idle.notify_all()

    def _job(self, r: dict) -> _Job:
        """The job of a checked request: its prime fed, its first character drawn when it has
        no prime (``iter_sample``'s rule), its sampler made (which checks the options)."""
        model, vocab = self.model, self.model.vocab
        unknown = vocab.unknown(r["prime"])
        if unknown:
            raise RequestError(
                400,
                f"prime: {len(unknown)} character(s) not in the model's vocabulary: "
                f"{char_listing(unknown)}",
            )
        prime = vocab.encode(r["prime"])
        rng = np.random.default_rng(r["seed"])
        remaining, first_piece, state = r["length"], None, None
        if len(prime):
            if len(prime) > 1:
                _, state = model.forward(prime[:-1, None])
            next_ids = prime[-1:]
        else:
            next_ids = np.floor(rng.random(1) * model.vocab_size).astype(INDEX_DTYPE)
            first_piece, remaining = vocab.decode(next_ids), max(remaining - 1, 0)
        try:
            sampler = model.sampler(next_ids, state, temperature=r["temperature"],
                                    top_k=r["top_k"], top_p=r["top_p"], apart=True)  # fmt: skip
        except (TypeError, ValueError) as err:
            raise RequestError(400, str(err)) from None
        key = (r["temperature"], r["top_k"], r["top_p"])
        job = _Job(sampler, rng, remaining, key, r["stream"])
        if first_piece is not None and r["length"]:
            job.add(first_piece)
        if not remaining:
            job.finish()
        return job

    def _submit(self, job: _Job) -> None:
        """Queue a job for the worker, or refuse it (503)."""
        with self._admitting:
            if self._stopping:
                raise RequestError(503, "the server is shutting down")
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                raise RequestError(
                    503, f"busy: {self.limits.max_queue} requests are waiting; try again later"
                ) from None

    # -- the worker ------------------------------------------------------------------------

    def _take(self, wait: bool, room: int) -> list[_Job]:
        """Up to ``room`` queued jobs; with ``wait``, after waiting for a first one."""
        taken = []
        while len(taken) < room:
            try:
                job = self._jobs.get(block=wait and not taken)
            except queue.Empty:
                break
            if job is None:  # close() woke the worker
                break
            taken.append(job)
        return taken

    def _draw_forever(self) -> None:
        if self.threads:
            _kernel_threads(self.threads)
        batches: dict[tuple, _Batch] = {}
        while not self._stopping:
            room = self.limits.max_streams - sum(map(len, batches.values()))
            for job in self._take(not batches, room):
                batches.setdefault(job.options, _Batch()).joining.append(job)
            for options, batch in list(batches.items()):
                if self._stopping:
                    break
                try:
                    batch.draw(self.model)
                except Exception as err:  # noqa: BLE001 -- fail these requests, serve on
                    self._log(f"sampling failed: {traceback.format_exc()}")
                    batch.cancel(RequestError(500, f"sampling failed: {err}"))
                if not len(batch):
                    del batches[options]
        stopped = RequestError(503, "the server is shutting down")
        for batch in batches.values():
            batch.cancel(stopped)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.pieces.put(stopped)

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)


def _kernel_threads(n: int) -> None:
    """The kernels' threads in this Python thread (nothing without the extension).

    Only the worker may run kernels on a team: libgomp gives each Python thread that forks a
    team its own pool, and with more pool threads than CPUs it spins briefly before it sleeps,
    so the barriers of one-stream sampling sleep and wake at every step.  Measured on 2 CPUs
    (charrnn-default, 2 threads): a lone stream drew 8-9k characters/s while another Python
    thread kept a 2-thread pool, 120k otherwise (docs/serve.md)."""
    from .threads import set_num_threads

    try:
        set_num_threads(n)
    except ImportError:  # the NumPy backend alone: no pool
        pass


class _HTTPServer(ThreadingHTTPServer):
    # The listen backlog: with socketserver's 5, 64 clients connecting at once lose SYNs, and
    # each lost one waits a second before it retries.
    request_queue_size = 128

    def __init__(self, address, app: Server):
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """One connection's requests (keep-alive: HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    server_version = "rnnfast"
    # Each small write goes out at once: with Nagle's algorithm a response's body waits for the
    # client's (delayed) acknowledgement of its headers, tens of milliseconds.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        app = self.server.app
        self.timeout = app.limits.timeout  # every read and write on the socket
        super().setup()
        _kernel_threads(1)  # the worker alone runs kernels on a team (_kernel_threads)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def _route(self, method: str) -> None:
        app = self.server.app
        app._answering(1)
        try:
            routes = {"/info": ("GET", self._info), "/generate": ("POST", self._generate)}
            path = self.path.split("?", 1)[0]
            if path not in routes:
                raise RequestError(404, f"no such path: {path}; try POST /generate or GET /info")
            allowed, answer = routes[path]
            if method != allowed:
                raise RequestError(405, f"{path} takes {allowed}, not {method}")
            answer()
        except RequestError as err:
            self._error(err.status, err.message)
        except OSError:  # the client went away, or timed out a read or write
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 -- a bug: answer 500, keep serving
            self.log_error("%s", traceback.format_exc())
            self._error(500, f"internal error: {type(err).__name__}: {err}")
        finally:
            app._answering(-1)

    def _info(self) -> None:
        self._json(200, self.server.app.info())

    def _body(self) -> bytes:
        """The request body, read within ``limits.timeout`` (408 past it)."""
        limits = self.server.app.limits
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(411, "send the body with a Content-Length, not chunked")
        size = self.headers.get("Content-Length")
        if size is None:
            self.close_connection = True
            raise RequestError(411, "Content-Length: required")
        if not (size.strip().isdigit() and size.isascii()):
            self.close_connection = True
            raise RequestError(400, f"Content-Length: expected a number of bytes, got {size!r}")
        size = int(size)
        if size > limits.max_body:
            self.close_connection = True  # the body is left unread
            raise RequestError(413, f"the body has {size} bytes, over the {limits.max_body} "
                                    "allowed")  # fmt: skip
        parts, deadline = [], time.monotonic() + limits.timeout
        while size:
            left = deadline - time.monotonic()
            part = None
            if left > 0:
                self.connection.settimeout(left)
                try:
                    part = self.rfile.read1(size)
                except TimeoutError:
                    pass
            if part is None:
                self.close_connection = True
                raise RequestError(
                    408, f"the body did not arrive within {limits.timeout:g} s; send it at once"
                )
            if not part:
                raise ConnectionAbortedError("the client closed the connection mid-body")
            parts.append(part)
            size -= len(part)
        self.connection.settimeout(limits.timeout)
        return b"".join(parts)

    def _generate(self) -> None:
        app = self.server.app
        r = parse_request(self._body(), app.limits)
        if r["seed"] is None:
            r["seed"] = np.random.SeedSequence().entropy
        job = app._job(r)
        if job.remaining:
            app._submit(job)
        if not r["stream"]:
            text = r["prime"] + "".join(job.results())
            self._json(200, {"text": text, "seed": r["seed"]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        chunked = self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:  # HTTP/1.0: the body ends where the connection does
            self.close_connection = True
        self.end_headers()
        try:
            self._line({"text": r["prime"], "seed": r["seed"]}, chunked)
            try:
                for piece in job.results():
                    self._line({"text": piece}, chunked)
            except RequestError as err:
                self._line({"error": err.message}, chunked)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            job.abandoned = True
            raise

    def _line(self, obj: dict, chunked: bool) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data) if chunked else data)

    def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self.log_error("%d %s", status, message)
        headers = {"Retry-After": "1"} if status == 503 else None
        self._json(status, {"error": message}, headers)

    def send_error(self, code, message=None, explain=None) -> None:
        """The standard library's own refusals (a malformed request line or header, an
        unknown method) as one-line JSON, like ours."""
        self.close_connection = True
        self._error(int(code), message or HTTPStatus(code).phrase)

    def log_message(self, format, *args) -> None:  # noqa: A002 -- the standard library's name
        self.server.app._log(f"{self.address_string()} {format % args}")
