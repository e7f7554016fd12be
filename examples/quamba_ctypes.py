#!/usr/bin/env python3
"""Quamba.cpp in-process from Python through the C API (include/quamba.h), standard library only.

usage: python3 examples/quamba_ctypes.py build/libquamba.so models/mamba-ref-d256-l6

Loads a model, tokenizes, scores a continuation (as `quamba eval` does) and generates greedily
with a callback, then saves and restores a sequence state.
"""
import ctypes
import sys


def load_library(path):
    lib = ctypes.CDLL(path)
    c = ctypes
    lib.qm_last_error.restype = c.c_char_p
    lib.qm_load.argtypes = [c.c_char_p, c.c_int]
    lib.qm_load.restype = c.c_void_p
    lib.qm_free.argtypes = [c.c_void_p]
    lib.qm_tokenize.argtypes = [c.c_void_p, c.c_char_p, c.c_size_t, c.POINTER(c.c_int32), c.c_int64]
    lib.qm_tokenize.restype = c.c_int64
    lib.qm_detokenize.argtypes = [c.c_void_p, c.POINTER(c.c_int32), c.c_int64, c.c_char_p, c.c_int64]
    lib.qm_detokenize.restype = c.c_int64
    lib.qm_logprobs.argtypes = [c.c_void_p, c.POINTER(c.c_int32), c.c_int64, c.POINTER(c.c_double)]
    lib.qm_state_new.argtypes = [c.c_void_p]
    lib.qm_state_new.restype = c.c_void_p
    lib.qm_state_free.argtypes = [c.c_void_p]
    lib.qm_state_size.argtypes = [c.c_void_p]
    lib.qm_state_size.restype = c.c_size_t
    lib.qm_state_get.argtypes = [c.c_void_p, c.c_void_p, c.c_void_p, c.c_size_t]
    lib.qm_state_set.argtypes = [c.c_void_p, c.c_void_p, c.c_void_p, c.c_size_t]
    lib.qm_generate.argtypes = [c.c_void_p, c.c_void_p, c.POINTER(c.c_int32), c.c_int64, c.c_int64,
                                c.POINTER(Sampling), TOKEN_CALLBACK, c.c_void_p]
    lib.qm_generate.restype = c.c_int64
    return lib


class Sampling(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_p", ctypes.c_float),
                ("top_k", ctypes.c_int32), ("seed", ctypes.c_uint64)]


TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char),
                                  ctypes.c_size_t, ctypes.c_void_p)


def check(lib, ok):
    if not ok:
        sys.exit("quamba: " + lib.qm_last_error().decode("utf-8", "replace"))


def tokenize(lib, model, text):
    data = text.encode("utf-8")
    n = lib.qm_tokenize(model, data, len(data), None, 0)
    check(lib, n >= 0)
    ids = (ctypes.c_int32 * n)()
    lib.qm_tokenize(model, data, len(data), ids, n)
    return list(ids)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    lib = load_library(sys.argv[1])
    model = lib.qm_load(sys.argv[2].encode(), 0)
    check(lib, model)

    context = tokenize(lib, model, "It is a truth universally acknowledged, that a single man")
    continuation = tokenize(lib, model, " in possession of a good fortune")
    ids = context + continuation
    arr = (ctypes.c_int32 * len(ids))(*ids)
    out = (ctypes.c_double * (len(ids) - 1))()
    check(lib, lib.qm_logprobs(model, arr, len(ids), out) == 0)
    score = sum(out[len(context) - 1:])
    print("log p(continuation | context) = %.4f over %d tokens" % (score, len(continuation)))

    pieces = []

    @TOKEN_CALLBACK
    def on_token(token_id, piece, length, user):
        pieces.append(ctypes.string_at(piece, length))
        return 0  # nonzero stops

    state = lib.qm_state_new(model)
    greedy = Sampling(0.0, 1.0, 0, 0)
    prompt = (ctypes.c_int32 * len(context))(*context)
    n = lib.qm_generate(model, state, prompt, len(context), 16, ctypes.byref(greedy), on_token, None)
    check(lib, n >= 0)
    print("generated:", b"".join(pieces).decode("utf-8", "replace"))

    # Snapshot the state, generate on, restore it, generate again: the same continuation.
    size = lib.qm_state_size(model)
    snapshot = ctypes.create_string_buffer(size)
    check(lib, lib.qm_state_get(model, state, snapshot, size) == 0)
    runs = []
    for _ in range(2):
        pieces.clear()
        check(lib, lib.qm_state_set(model, state, snapshot, size) == 0)
        lib.qm_generate(model, state, None, 0, 8, ctypes.byref(greedy), on_token, None)
        runs.append(b"".join(pieces))
    print("restored state continues identically:", runs[0] == runs[1])
    check(lib, runs[0] == runs[1])
    lib.qm_state_free(state)
    lib.qm_free(model)


if __name__ == "__main__":
    main()
