#!/usr/bin/python3
"""Builds the deterministic English training corpus of the Quamba.cpp reference model.

Sources (all shipped by Debian packages, freely licensed):
  * bible-kjv-text : King James Version (public domain), via the `bible` program
                     of package bible-kjv. One document per chapter.
  * fortunes, fortunes-min : fortune cookie files in /usr/share/games/fortunes
                     (BSD-style licence of fortune-mod; see /usr/share/doc/fortunes).
                     One document per fortune; the `ascii-art` file is skipped.
  * dict-gcide     : GNU Collaborative International Dictionary of English
                     (GPL-3+), /usr/share/dictd/gcide.dict.dz. Markup is
                     simplified; every 5th entry is kept; 16 kept entries
                     form one document.

Split: documents are numbered per source in source order; document k of a source
goes to validation iff k % 50 == 49, otherwise to train.

Output (default out/corpus/): train.txt, valid.txt (UTF-8, each document followed
by the literal separator <|endoftext|>), manifest.json with sizes and sha256.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

EOT = "<|endoftext|>"
VAL_EVERY = 50
GCIDE_KEEP_EVERY = 5
GCIDE_ENTRIES_PER_DOC = 16
FORTUNE_DIR = "/usr/share/games/fortunes"
FORTUNE_SKIP = {"ascii-art"}

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(s):
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = re.sub(r".\x08", "", s)  # overstrike (x BS y) -> y
    s = _CTRL.sub("", s)
    s = "\n".join(line.rstrip() for line in s.split("\n"))
    return s.strip("\n")


def kjv_docs():
    out = subprocess.run(["bible", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, check=True).stdout.decode("utf-8")
    docs, title, verses, prev_blank = [], None, [], True
    for line in out.split("\n"):
        if not line.strip():
            prev_blank = True
            continue
        m = re.match(r"^  (\d+) (.*)$", line)
        if m:
            verses.append([m.group(1), m.group(2).strip()])
        elif not prev_blank:
            verses[-1][1] += " " + line.strip()  # wrapped continuation line
        else:  # a line after a blank line that is not a verse: chapter title
            if title is not None:
                docs.append(title + "\n\n" + "\n".join("%s %s" % (n, v) for n, v in verses))
            title, verses = line.strip(), []
        prev_blank = False
    if title is not None:
        docs.append(title + "\n\n" + "\n".join("%s %s" % (n, v) for n, v in verses))
    return docs


def read_text(path):
    raw = open(path, "rb").read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def fortune_docs():
    docs = []
    names = sorted(n for n in os.listdir(FORTUNE_DIR)
                   if "." not in n and n not in FORTUNE_SKIP
                   and os.path.isfile(os.path.join(FORTUNE_DIR, n)))
    for n in names:
        text = read_text(os.path.join(FORTUNE_DIR, n))
        for f in re.split(r"\n%\n", "\n" + text + "\n"):
            f = clean(f)
            if f.strip() and f.strip() != "%":
                docs.append(f)
    return docs


_ACCENT = re.compile(r"\[([.=^\"`~',:]{0,2})([A-Za-z]{1,2})([.=^\"`~'',:]{0,2})\]")


def gcide_clean_entry(e):
    lines = [l for l in e.split("\n") if not re.match(r"^\s*\[(1913 Webster|Webster 1913|PJC|WordNet|Century|Chambers).*\]\s*$", l)]
    if not lines:
        return ""
    text = "\n".join(lines)
    # headword line: 'Aback \A*back"\ ([.a]*b[a^]k"), adv. [...]' -> 'Aback, adv. [...]'
    text = re.sub(r"^([^\\\n]+?) \\[^\\\n]*\\(?:\s*\([^)\n]*\))?", r"\1", text, count=1)
    text = re.sub(r"\\[^\\\n]*\\", "", text)       # remaining \pron\ markup
    text = _ACCENT.sub(r"\2", text)                 # [a^] -> a
    text = text.replace("{", "").replace("}", "")
    text = re.sub(r"[ \t]+", " ", text)
    # re-flow: join indented continuation lines; keep numbered senses on new lines
    out = []
    for l in text.split("\n"):
        l = l.strip()
        if not l:
            continue
        if out and not re.match(r"^(\d+\.|\(\w\)|Syn\.|Note:|--)", l):
            out[-1] += " " + l
        else:
            out.append(l)
    return "\n".join(out)


def gcide_docs():
    raw = gzip.open("/usr/share/dictd/gcide.dict.dz", "rb").read().decode("utf-8", "replace")
    raw = raw.replace("\r", "")
    entries = [e for e in re.split(r"\n\s*\n", raw) if e.strip()]
    # skip the database header entries (00-database-*) and everything that does
    # not start with a headword in column 0
    entries = [e for e in entries if not e.startswith((" ", "00"))]
    kept = []
    for i, e in enumerate(entries):
        if i % GCIDE_KEEP_EVERY:
            continue
        c = gcide_clean_entry(e)
        if len(c) > 20:
            kept.append(c)
    return ["\n\n".join(kept[i:i + GCIDE_ENTRIES_PER_DOC])
            for i in range(0, len(kept), GCIDE_ENTRIES_PER_DOC)]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "out", "corpus"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sources = [("bible-kjv-text", kjv_docs()), ("fortunes", fortune_docs()), ("dict-gcide", gcide_docs())]
    train, valid, stats = [], [], {}
    for name, docs in sources:
        nt = nv = bt = bv = 0
        for k, d in enumerate(docs):
            b = len(d.encode("utf-8"))
            if k % VAL_EVERY == VAL_EVERY - 1:
                valid.append(d); nv += 1; bv += b
            else:
                train.append(d); nt += 1; bt += b
        stats[name] = {"train_docs": nt, "valid_docs": nv, "train_bytes": bt, "valid_bytes": bv}
        print("%-16s docs train %6d valid %5d  bytes train %9d valid %8d" % (name, nt, nv, bt, bv))
    files = {}
    for split, docs in (("train", train), ("valid", valid)):
        p = os.path.join(args.out, split + ".txt")
        with open(p, "w", encoding="utf-8", newline="\n") as f:
            for d in docs:
                assert EOT not in d
                f.write(d)
                f.write(EOT)
        files[split + ".txt"] = {"bytes": os.path.getsize(p), "sha256": sha256(p),
                                 "documents": len(docs),
                                 "text_bytes": sum(len(d.encode("utf-8")) for d in docs)}
        print("%s: %d bytes sha256 %s" % (p, files[split + ".txt"]["bytes"], files[split + ".txt"]["sha256"]))
    manifest = {"separator": EOT, "validation_rule": "document k of each source -> valid iff k %% %d == %d" % (VAL_EVERY, VAL_EVERY - 1),
                "sources": stats, "files": files,
                "gcide": {"keep_every": GCIDE_KEEP_EVERY, "entries_per_doc": GCIDE_ENTRIES_PER_DOC}}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
