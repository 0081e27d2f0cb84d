"""``rnnfast serve``: servers on 127.0.0.1 in this process (``rnnfast.serve.Server``), and the
command in a subprocess for SIGTERM and Ctrl-C.  Every server is closed by its test; every read
from a socket has a timeout."""

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import subprocess_env

import rnnfast
from rnnfast import checkpoint
from rnnfast.__main__ import main
from rnnfast.serve import CHUNK, Limits, Server

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 4
LIMITS = Limits(max_body=8192, max_length=500, max_queue=256, max_streams=64, timeout=5.0)
WAIT = 20  # seconds any client waits for an answer before the test fails


@pytest.fixture(scope="module")
def model():
    return rnnfast.CharLM(rnnfast.Vocab.from_text(TEXT), hidden_size=16, num_layers=2, seed=0)


@pytest.fixture(scope="module")
def server(model):
    with Server(model, port=0, limits=LIMITS) as server:
        yield server


def call(server, method, path, body=None):
    """(status, headers, parsed JSON body or NDJSON lines) of one request on a new connection."""
    connection = http.client.HTTPConnection(*server.address, timeout=WAIT)
    try:
        if isinstance(body, dict):
            body = json.dumps(body)
        connection.request(method, path, body)
        response = connection.getresponse()
        data = response.read().decode()
    finally:
        connection.close()
    if response.getheader("Content-Type") == "application/x-ndjson":
        return response.status, response, [json.loads(line) for line in data.splitlines()]
    return response.status, response, json.loads(data)


def generate(server, **fields):
    status, _, answer = call(server, "POST", "/generate", fields)
    assert status == 200, answer
    return answer["text"]


def expected(model, fields):
    """What ``model.sample`` returns for a request's fields."""
    keys = ("prime", "temperature", "top_k", "top_p", "seed")
    return model.sample(fields["length"], **{k: fields[k] for k in keys if k in fields})


def raw(server, data: bytes, *, pause=0.0, then=b"") -> bytes:
    """Send ``data`` on a socket, after ``pause`` seconds ``then``, and read until the server
    closes the connection or has sent one whole response."""
    with socket.create_connection(server.address, timeout=WAIT) as s:
        s.sendall(data)
        if pause:
            time.sleep(pause)
            s.sendall(then)
        received = b""
        while True:
            part = s.recv(65536)
            received += part
            head, _, body = received.partition(b"\r\n\r\n")
            size = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")]  # fmt: skip
            if not part or (size and len(body) >= size[0]):
                return received


@pytest.fixture
def paused(monkeypatch):
    """A worker that starts drawing only when the test calls ``release()``: the requests sent
    before it wait in the queue, and are then taken in at once."""
    release = threading.Event()
    draw_forever = Server._draw_forever

    def wait_then_draw(self):
        release.wait(WAIT)
        draw_forever(self)

    monkeypatch.setattr(Server, "_draw_forever", wait_then_draw)
    return release


def wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def in_threads(function, args_list) -> list:
    """function(*args) for every args at once, one thread each; their results in order."""
    results = [None] * len(args_list)

    def run(k, args):
        results[k] = function(*args)

    threads = [threading.Thread(target=run, args=(k, a)) for k, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    return results


def in_background(server, fields: list[dict]) -> tuple[threading.Thread, list]:
    """The requests of ``fields`` sent at once from a thread of their own: the thread, and the
    list that holds their texts once it has ended."""
    answers = []
    thread = threading.Thread(target=lambda: answers.extend(
        in_threads(lambda f: generate(server, **f), [(f,) for f in fields])))  # fmt: skip
    thread.start()
    return thread, answers


REQUESTS = [
    {"prime": "the ", "length": 80, "seed": 1},
    {"prime": "t", "length": 33, "seed": 2},
    {"length": 1, "seed": 3},  # the one character drawn without the model
    {"length": 70, "seed": 4},
    {"prime": "fox", "length": 0, "seed": 5},
    {"prime": "lazy", "length": CHUNK, "seed": 6, "temperature": 0.6},
    {"prime": "do", "length": 65, "seed": 7, "temperature": 0.6},
    {"prime": "a", "length": 40, "seed": 8, "top_k": 3},
    {"length": 0, "seed": 9},
]


def test_requests_drawn_together_return_what_model_sample_returns(model, paused):
    """Nine seeded requests queued before the worker starts are taken in at once and drawn as
    three sampler calls (one per set of options), each request a stream: each answer is
    ``model.sample``'s text for its fields, prime included, including the no-prime rule (the
    first character from the seed's first uniform) and lengths 0, 1, CHUNK and past it."""
    with Server(model, port=0, limits=LIMITS) as server:
        thread, answers = in_background(server, REQUESTS)
        # the requests that draw nothing (length 0, or 1 without a prime) are answered at once
        wait_until(lambda: server._jobs.qsize() == 6, "six requests wait")
        paused.set()
        thread.join(WAIT)
    assert answers == [expected(model, f) for f in REQUESTS]


def test_top_p_requests_return_what_model_sample_returns(server, model):
    fields = [{"prime": "th", "length": 50, "seed": s, "top_p": 0.8} for s in range(3)]
    answers = in_threads(lambda f: generate(server, **f), [(f,) for f in fields])
    assert answers == [expected(model, f) for f in fields]


def test_64_concurrent_clients_each_get_their_answer(server, model):
    """64 clients at once, over every kind of prime and four sets of options: 64 correct
    answers, each equal to ``model.sample`` with that client's seed."""
    fields = [
        {"prime": ["", "t", "the "][k % 3], "length": [1, 40, 77, 200][k % 4], "seed": 100 + k,
         "temperature": [1.0, 0.7][k % 2], "top_k": [None, 5][k // 32]}
        for k in range(64)
    ]  # fmt: skip
    start = threading.Barrier(64, timeout=WAIT)

    def client(f):
        start.wait()
        return generate(server, **f)

    assert in_threads(client, [(f,) for f in fields]) == [expected(model, f) for f in fields]


def test_an_unseeded_request_says_its_seed_and_reproduces_with_it(server, model):
    status, _, answer = call(server, "POST", "/generate", {"prime": "the", "length": 30})
    assert status == 200 and isinstance(answer["seed"], int)
    assert answer["text"] == model.sample(30, prime="the", seed=answer["seed"])


@pytest.mark.parametrize("prime", ["", "qu"])
def test_a_stream_is_the_prime_then_pieces_of_the_plain_answer(server, prime):
    fields = {"prime": prime, "length": 3 * CHUNK + 5, "seed": 11}
    status, response, lines = call(server, "POST", "/generate", {**fields, "stream": True})
    assert status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert lines[0] == {"text": prime, "seed": 11}
    assert all(0 < len(line["text"]) <= CHUNK for line in lines[1:])
    assert "".join(line["text"] for line in lines) == generate(server, **fields)


def test_a_stream_to_an_http_1_0_client_ends_with_the_connection(server):
    body = json.dumps({"prime": "qu", "length": 50, "seed": 11, "stream": True}).encode()
    response = raw(server, b"POST /generate HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(body), body))  # fmt: skip
    head, _, lines = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"chunked" not in head
    text = "".join(json.loads(line)["text"] for line in lines.splitlines())
    assert text == generate(server, prime="qu", length=50, seed=11)


def test_info_tells_the_model_its_vocabulary_and_the_limits(server, model):
    status, _, info = call(server, "GET", "/info")
    assert status == 200
    assert info == {
        "cell": "lstm", "hidden_size": 16, "num_layers": 2, "vocab_size": len(model.vocab),
        "num_params": model.num_params, "dtype": "float32", "backend": "c",
        "vocab": "".join(sorted(set(TEXT))), "chunk": CHUNK,
        "limits": {"max_body": 8192, "max_length": 500, "max_queue": 256, "max_streams": 64,
                   "timeout": 5.0},
    }  # fmt: skip


BAD_BODIES = [
    ("malformed JSON", b'{"length": 5', "malformed JSON: Expecting ',' delimiter"),
    ("not an object", b"[5]", r"expected a JSON object, got \[5\]$"),
    ("not UTF-8", b'{"prime": "\xff", "length": 5}', "the body is not UTF-8: 'utf-8' codec"),
    ("too many digits", b'{"length": 1' + b"0" * 5000 + b"}", "malformed JSON: Exceeds the limit"),
    ("unknown field", b'{"length": 5, "lenght": 5, "seeds": 1}',
     r"unknown field\(s\) 'lenght', 'seeds'; expected some of prime, length, temperature, "),
    ("no length", b'{"prime": "a"}', "length: required"),
    ("length negative", b'{"length": -1}', "length: expected an integer from 0 to 500, got -1"),
    ("length huge", b'{"length": 1000000000000}', "length: expected an integer from 0 to 500"),
    ("length float", b'{"length": 5.0}', "length: expected an integer from 0 to 500, got 5.0"),
    ("length bool", b'{"length": true}', "length: expected an integer from 0 to 500, got true"),
    ("length string", b'{"length": "5"}', 'length: expected an integer from 0 to 500, got "5"'),
    ("prime number", b'{"length": 5, "prime": 5}', "prime: expected a string, got 5"),
    ("temperature 0", b'{"length": 5, "temperature": 0}',
     "temperature: expected a positive finite number, got 0"),
    ("temperature NaN", b'{"length": 5, "temperature": NaN}', "temperature: .* got NaN"),
    ("temperature inf", b'{"length": 5, "temperature": 1e999}', "temperature: .* got Infinity"),
    ("temperature huge int", b'{"length": 5, "temperature": 1' + b"0" * 400 + b"}",
     r"temperature: .* got 1000+ \.\.\.$"),
    ("temperature bool", b'{"length": 5, "temperature": true}', "temperature: .* got true"),
    ("top_k 0", b'{"length": 5, "top_k": 0}', "top_k: expected a positive integer or null, got 0"),
    ("top_k float", b'{"length": 5, "top_k": 2.5}', "top_k: .* got 2.5"),
    ("top_p 0", b'{"length": 5, "top_p": 0}',
     r"top_p: expected a number in \(0, 1\] or null, got 0"),
    ("top_p 1.5", b'{"length": 5, "top_p": 1.5}', r"top_p: .* got 1.5"),
    ("top_p string", b'{"length": 5, "top_p": "0.9"}', r'top_p: .* got "0.9"'),
    ("seed negative", b'{"length": 5, "seed": -1}',
     "seed: expected a non-negative integer or null, got -1"),
    ("seed float", b'{"length": 5, "seed": 1.5}', "seed: .* got 1.5"),
    ("stream 1", b'{"length": 5, "stream": 1}', "stream: expected true or false, got 1"),
    ("prime outside the vocabulary", '{"length": 5, "prime": "thé€ ?"}'.encode(),
     "prime: 3 character\\(s\\) not in the model's vocabulary: '\\?', 'é', '€'"),
]  # fmt: skip


@pytest.mark.parametrize(
    "body, message", [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_a_bad_body_is_400_with_one_line_and_the_connection_serves_on(server, model, body, message):
    """Each bad body: 400 and {"error": one line}; the same keep-alive connection then
    answers a good request."""
    connection = http.client.HTTPConnection(*server.address, timeout=WAIT)
    try:
        connection.request("POST", "/generate", body)
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 400 and list(answer) == ["error"]
        assert "\n" not in answer["error"] and len(answer["error"]) < 200
        assert re.match(message, answer["error"]), answer
        connection.request("POST", "/generate", json.dumps({"length": 9, "seed": 0}))
        response = connection.getresponse()
        assert json.loads(response.read())["text"] == model.sample(9, seed=0)
    finally:
        connection.close()


def one_line_error(response: bytes) -> tuple[int, str]:
    """(status, error message) of a raw HTTP response that must be a one-line JSON error."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    answer = json.loads(body)
    assert list(answer) == ["error"] and "\n" not in answer["error"]
    return status, answer["error"]


BAD_REQUESTS = [
    ("body over max_body", b"POST /generate HTTP/1.1\r\nContent-Length: 8193\r\n\r\n", 413,
     "the body has 8193 bytes, over the 8192 allowed"),
    ("no Content-Length", b"POST /generate HTTP/1.1\r\n\r\n", 411, "Content-Length: required"),
    ("a chunked body", b"POST /generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2\r\n{}\r\n0\r\n\r\n", 411, "send the body with a Content-Length, not chunked"),
    ("bad Content-Length", b"POST /generate HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400,
     "Content-Length: expected a number of bytes, got '-3'"),
    ("unknown path", b"GET /generat HTTP/1.1\r\n\r\n", 404,
     "no such path: /generat; try POST /generate or GET /info"),
    ("GET /generate", b"GET /generate HTTP/1.1\r\n\r\n", 405, "/generate takes POST, not GET"),
    ("POST /info", b"POST /info HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405,
     "/info takes GET, not POST"),
    ("DELETE /info", b"DELETE /info HTTP/1.1\r\n\r\n", 405, "/info takes GET, not DELETE"),
    ("unknown method", b"BREW /info HTTP/1.1\r\n\r\n", 501, "Unsupported method ('BREW')"),
    ("too many headers", b"GET /info HTTP/1.1\r\n" + b"X: x\r\n" * 101 + b"\r\n", 431,
     "Too many headers"),
    ("a header line too long", b"GET /info HTTP/1.1\r\nX: " + b"x" * 70000 + b"\r\n\r\n", 431,
     "Line too long"),
]  # fmt: skip


@pytest.mark.parametrize("request_bytes, status, message", [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])  # fmt: skip
def test_a_bad_request_is_4xx_with_one_line_and_the_server_serves_on(
    server, model, request_bytes, status, message
):
    assert one_line_error(raw(server, request_bytes)) == (status, message)
    assert generate(server, length=9, seed=0) == model.sample(9, seed=0)


def test_a_malformed_request_line_is_answered_with_one_line(server, model):
    """No HTTP version can be read from it, so the standard library answers as HTTP/0.9 does:
    the body alone."""
    answer = json.loads(raw(server, b"GET /info HTTP/1.1 x\r\n\r\n"))
    assert answer == {"error": "Bad request version ('x')"}
    assert generate(server, length=9, seed=0) == model.sample(9, seed=0)


def test_a_full_queue_is_503_and_the_queued_requests_are_answered(model, paused):
    limits = Limits(max_queue=2, timeout=5.0)
    with Server(model, port=0, limits=limits) as server:
        fields = [{"length": 20, "seed": k} for k in range(2)]
        thread, answers = in_background(server, fields)
        wait_until(lambda: server._jobs.full(), "the queue is full")
        status, response, answer = call(server, "POST", "/generate", {"length": 20})
        assert (status, answer) == (503, {"error": "busy: 2 requests are waiting; try again later"})
        assert response.getheader("Retry-After") == "1"
        paused.set()
        thread.join(WAIT)
    assert answers == [expected(model, f) for f in fields]


def test_a_failed_draw_is_500_for_its_requests_and_the_server_serves_on(model, monkeypatch):
    draw = rnnfast.model.Sampler.draw
    failures = iter([RuntimeError("planted")])

    def fail_once(self, uniforms):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return draw(self, uniforms)

    monkeypatch.setattr(rnnfast.model.Sampler, "draw", fail_once)
    with Server(model, port=0, limits=LIMITS) as server:
        status, _, answer = call(server, "POST", "/generate", {"length": 9, "seed": 0})
        assert (status, answer) == (500, {"error": "sampling failed: planted"})
        assert generate(server, length=9, seed=0) == model.sample(9, seed=0)


@pytest.fixture
def impatient(model):
    """A server that gives a client 0.4 s to send its body, and to take any read or write."""
    with Server(model, port=0, limits=Limits(timeout=0.4)) as server:
        yield server


def test_a_client_slow_to_send_its_body_gets_408(impatient, model):
    """One byte of the body, then silence: 408 after the timeout; a client that trickles its
    body a byte at a time, each within the timeout, also gets 408 once the whole body took
    longer; the server answers the next request."""
    head = b"POST /generate HTTP/1.1\r\nContent-Length: 30\r\n\r\n"
    started = time.monotonic()
    assert one_line_error(raw(impatient, head + b"{"))[0] == 408
    assert 0.3 < time.monotonic() - started < 5
    with socket.create_connection(impatient.address, timeout=0.1) as s:
        s.sendall(head)
        for byte in b'{"length": 5}' + b" " * 17:  # a byte every 0.1 s, until an answer
            s.sendall(bytes([byte]))
            try:
                received = s.recv(65536)
                break
            except TimeoutError:
                pass
        s.settimeout(WAIT)
        while part := s.recv(65536):  # the server closes the connection after a 408
            received += part
    status, message = one_line_error(received)
    assert (status, message) == (408, "the body did not arrive within 0.4 s; send it at once")
    assert generate(impatient, length=9, seed=0) == model.sample(9, seed=0)


def test_a_client_slow_to_send_its_headers_is_disconnected(impatient, model):
    started = time.monotonic()
    assert raw(impatient, b"POST /generate HTT") == b""
    assert 0.3 < time.monotonic() - started < 5
    assert generate(impatient, length=9, seed=0) == model.sample(9, seed=0)


def test_clients_that_leave_mid_answer_do_not_stop_the_others(model, monkeypatch):
    """Clients that close their connection mid-stream (streams of 10^8 characters, which
    would take minutes) or before their answer: the requests drawn beside them get the right
    text, the worker lets the abandoned streams go (it comes back to waiting for work), and the
    server answers the next request."""
    waits = []  # _take's wait argument each time round the worker's loop: True when idle
    take = Server._take
    monkeypatch.setattr(Server, "_take", lambda self, wait, room: waits.append(wait)
                        or take(self, wait, room))  # fmt: skip
    limits = Limits(max_length=10**8, timeout=5.0)
    long = {"length": 10**8, "seed": 3, "stream": True}
    beside = [{"prime": "the", "length": 400, "seed": k} for k in range(4)]
    with Server(model, port=0, limits=limits) as server:

        def leave_mid_stream(fields):
            connection = http.client.HTTPConnection(*server.address, timeout=WAIT)
            connection.request("POST", "/generate", json.dumps(fields))
            connection.getresponse().readline()
            connection.sock.shutdown(socket.SHUT_RDWR)
            connection.close()

        def leave_before_the_answer(fields):
            with socket.create_connection(server.address, timeout=WAIT) as s:
                body = json.dumps(fields).encode()
                s.sendall(b"POST /generate HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))  # fmt: skip

        def answer(fields):
            return generate(server, **fields)

        leaving = [(leave_mid_stream, long)] * 3 + [(leave_before_the_answer, beside[0])] * 3
        answers = in_threads(lambda f, a: f(a), leaving + [(answer, f) for f in beside])
        assert answers[len(leaving) :] == [expected(model, f) for f in beside]
        wait_until(lambda: waits[-1] and server._jobs.empty(), "the worker is idle")
        assert generate(server, length=9, seed=0) == model.sample(9, seed=0)


@pytest.mark.parametrize("field, value, message", [
    ("max_queue", 0, "max_queue: expected a positive integer, got 0"),
    ("max_length", -1, "max_length: expected a non-negative integer, got -1"),
    ("timeout", 0.0, "timeout: expected a positive finite number, got 0.0"),
])  # fmt: skip
def test_impossible_limits_are_refused(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Limits(**{field: value})


def test_serve_on_a_port_in_use_is_a_one_line_error(tmp_path, model, capsys):
    path = tmp_path / "model.npz"
    checkpoint.save(path, model)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(path), "--port", str(port)]) == 2
    assert capsys.readouterr().err.startswith(
        f"rnnfast serve: error: cannot listen on 127.0.0.1:{port}:"
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_the_server_cleanly_with_exit_0(tmp_path, model, signum):
    """``rnnfast serve`` in a subprocess: it prints its address, answers, and on SIGTERM or
    Ctrl-C ends the stream it is drawing with an error line, then exits with 0."""
    path = tmp_path / "model.npz"
    checkpoint.save(path, model)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnfast", "serve", str(path), "--port", "0", "--max-length",
         "10000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
        cwd=tmp_path,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {path} on http://127.0.0.1:"), proc.stderr.read()
        host, port = line.split("//")[1].strip().split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
        connection.request("POST", "/generate", json.dumps({"length": 10_000_000, "stream": True}))
        response = connection.getresponse()
        response.readline()
        proc.send_signal(signum)
        lines = response.read().decode().splitlines()
        connection.close()
        _, stderr = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert json.loads(lines[-1]) == {"error": "the server is shutting down"}
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
