#!/usr/bin/env python3
"""Load generator for `quamba serve` (standard library only).

Sends a bounded number of streamed /v1/completions requests from N concurrent clients to a
server on this machine and prints the aggregate output throughput, and the p50/p99 time to first
token (TTFT) and time per output token after the first (TPOT).

  python3 bench/serve_load.py --url http://127.0.0.1:8080 --requests 32 --concurrency 8 \
      --max-tokens 64 --prompt-tokens 128

Requests use temperature 0 and ignore_eos, so each generates exactly --max-tokens tokens.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("the of and to in a is that for it as was with be by on not he i this are or his from at "
         "which but have an they you were her she there one all we their been has will more would "
         "if so who what when up out them about into than its some could time these two may then "
         "do first any my now such like our over man me even most made after also did many before").split()


def prompt_text(n_words, seed):
    return " ".join(WORDS[(seed * 7 + i * 13) % len(WORDS)] for i in range(n_words))


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(url, body, timeout, headers):
    """Streams one completion; returns (ttft_s, total_s, output_tokens) or raises."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body),
                 headers=dict({"Content-Type": "application/json"}, **headers))
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError("status %d: %s" % (resp.status, resp.read(200)))
    ttft, tokens, buf = None, None, b""
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if ttft is None and event.get("choices") and event["choices"][0].get("text"):
            ttft = time.perf_counter() - t0
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
    total = time.perf_counter() - t0
    conn.close()
    if tokens is None:
        raise RuntimeError("no usage in the stream")
    return (ttft if ttft is not None else total), total, tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--requests", type=int, default=32, help="requests in all (bounded)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=32, help="about this many prompt words")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    host = urllib.parse.urlparse(a.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("serve_load.py: expected a loopback --url (127.0.0.1), found %s" % host)
    if a.requests < 1 or a.concurrency < 1 or a.requests > 100000:
        sys.exit("serve_load.py: expected 1 <= --requests <= 100000 and --concurrency >= 1")
    headers = {"Authorization": "Bearer " + a.api_key} if a.api_key else {}

    lock = threading.Lock()
    next_req = [0]
    results, errors = [], []

    def worker():
        while True:
            with lock:
                i = next_req[0]
                if i >= a.requests:
                    return
                next_req[0] += 1
            body = {"prompt": prompt_text(a.prompt_tokens, i), "max_tokens": a.max_tokens,
                    "temperature": 0, "ignore_eos": True, "stream": True,
                    "stream_options": {"include_usage": True}}
            try:
                r = one_request(a.url, body, a.timeout, headers)
                with lock:
                    results.append(r)
            except Exception as e:  # counted and reported, the run goes on
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(min(a.concurrency, a.requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    ttft = [r[0] for r in results]
    tpot = [(r[1] - r[0]) / (r[2] - 1) for r in results if r[2] > 1]
    out_tokens = sum(r[2] for r in results)
    fig = {
        "requests_ok": len(results), "requests_failed": len(errors), "concurrency": a.concurrency,
        "max_tokens": a.max_tokens, "output_tokens": out_tokens, "wall_s": wall,
        "throughput_tok_s": out_tokens / wall if wall > 0 else 0.0,
        "ttft_p50_s": percentile(ttft, 50), "ttft_p99_s": percentile(ttft, 99),
        "tpot_p50_s": percentile(tpot, 50), "tpot_p99_s": percentile(tpot, 99),
        "tpot_mean_s": statistics.mean(tpot) if tpot else float("nan"),
    }
    if a.json:
        print(json.dumps(fig))
    else:
        print("requests: %d ok, %d failed; %d concurrent; %d output tokens in %.2f s" %
              (len(results), len(errors), a.concurrency, out_tokens, wall))
        print("throughput: %.1f output tok/s" % fig["throughput_tok_s"])
        print("TTFT: p50 %.1f ms, p99 %.1f ms" % (fig["ttft_p50_s"] * 1e3, fig["ttft_p99_s"] * 1e3))
        print("TPOT: p50 %.2f ms, p99 %.2f ms" % (fig["tpot_p50_s"] * 1e3, fig["tpot_p99_s"] * 1e3))
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
