#!/usr/bin/env python3
"""Strict checker of the Prometheus text exposition format 0.0.4.

For integration tests of the stats endpoint (/metrics). Python standard
library only.

    promcheck.py [--prefix ntp_] [FILE]     read FILE, or stdin when absent or "-"
    promcheck.py --selftest

Exits 0 and prints "ok: N families, M samples" when the text is valid, else
prints the first errors as "line N: what" and exits 1 (2 on bad usage).

Rules, beyond what the format itself requires:
  * the text is UTF-8 and ends with a newline; no empty lines, no CR;
  * every family has exactly one "# HELP" and one "# TYPE", both before its
    first sample; the samples of a family are one contiguous group;
  * metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
    [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__"; no label repeats in a
    sample;
  * label values are quoted, escape only backslash, double quote and newline
    (\\\\, \\", \\n);
  * values are floats as Prometheus writes them: decimal or exponent
    notation, +Inf, -Inf, NaN; an optional timestamp is an integer;
  * no duplicate series (same name and label set, in any label order);
  * counters are named *_total, their values are not negative or NaN;
  * with --prefix P (default: none), every metric name starts with P.
"""

import argparse
import re
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
TIMESTAMP = re.compile(r"-?[0-9]+")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
MAX_ERRORS = 20


def valid_float(text):
    return text in ("+Inf", "-Inf", "NaN") or FLOAT.fullmatch(text) is not None


def valid_help_escapes(text):
    """HELP text may escape only backslash (\\\\) and newline (\\n)."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\n":
                return False
            i += 2
        else:
            i += 1
    return True


def parse_sample(line):
    """Returns (name, [(label, value)], value_text) or raises ValueError."""
    m = METRIC_NAME.match(line)
    if not m:
        raise ValueError("invalid metric name at the start of the line")
    name = m.group(0)
    i = m.end()
    labels = []
    if i < len(line) and line[i] == "{":
        i += 1
        seen = set()
        while True:
            if i >= len(line):
                raise ValueError("unterminated label set")
            if line[i] == "}":
                i += 1
                break
            lm = LABEL_NAME.match(line, i)
            if not lm:
                raise ValueError("invalid label name at column %d" % (i + 1))
            lname = lm.group(0)
            if lname.startswith("__"):
                raise ValueError("label name %r is reserved (starts with __)" % lname)
            if lname in seen:
                raise ValueError("duplicate label %r" % lname)
            seen.add(lname)
            i = lm.end()
            if line[i:i + 2] != '="':
                raise ValueError("expected =\" after label %r" % lname)
            i += 2
            value = []
            while True:
                if i >= len(line):
                    raise ValueError("unterminated value of label %r" % lname)
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    if i + 1 >= len(line):
                        raise ValueError("dangling backslash in label %r" % lname)
                    e = line[i + 1]
                    if e == "\\":
                        value.append("\\")
                    elif e == '"':
                        value.append('"')
                    elif e == "n":
                        value.append("\n")
                    else:
                        raise ValueError("invalid escape \\%s in label %r" % (e, lname))
                    i += 2
                    continue
                value.append(c)
                i += 1
            labels.append((lname, "".join(value)))
            if i < len(line) and line[i] == ",":
                i += 1
            elif i < len(line) and line[i] != "}":
                raise ValueError("expected ',' or '}' after label %r" % lname)
    rest = line[i:]
    if not rest.startswith(" "):
        raise ValueError("expected a space before the value")
    fields = rest.split(" ")[1:]
    if len(fields) not in (1, 2) or "" in fields:
        raise ValueError("expected 'value' or 'value timestamp' separated by single spaces after the name")
    if not valid_float(fields[0]):
        raise ValueError("invalid value %r" % fields[0])
    if len(fields) == 2 and not TIMESTAMP.fullmatch(fields[1]):
        raise ValueError("invalid timestamp %r" % fields[1])
    return name, labels, fields[0]


def family_of(name, types):
    """The family a sample name belongs to (histogram/summary suffixes)."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            if suffix == "_bucket" and types[base] != "histogram":
                continue
            return base
    return name


def check(text, prefix=""):
    """Returns (errors, n_families, n_samples); errors are "line N: what"."""
    errors = []

    def err(n, what):
        errors.append("line %d: %s" % (n, what) if n else what)

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            return ["not UTF-8: %s" % e], 0, 0
    if text and not text.endswith("\n"):
        err(0, "text does not end with a newline")
    if not text:
        err(0, "empty exposition")
    helps, types, with_samples, closed, series = set(), {}, set(), set(), set()
    current = None
    n_samples = 0
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, line in enumerate(lines, 1):
        if len(errors) >= MAX_ERRORS:
            break
        if "\r" in line:
            err(n, "carriage return")
            continue
        if line == "":
            err(n, "empty line")
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 2 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                kw = parts[1]
                if len(parts) < 3 or not METRIC_NAME.fullmatch(parts[2]):
                    err(n, "%s without a valid metric name" % kw)
                    continue
                name = parts[2]
                rest = parts[3] if len(parts) > 3 else ""
                if prefix and not name.startswith(prefix):
                    err(n, "metric %s does not start with %s" % (name, prefix))
                if name in with_samples:
                    err(n, "%s for %s after its samples" % (kw, name))
                if kw == "HELP":
                    if name in helps:
                        err(n, "second HELP for %s" % name)
                    helps.add(name)
                    if not rest.strip():
                        err(n, "empty HELP for %s" % name)
                    if not valid_help_escapes(rest):
                        err(n, "HELP of %s escapes something other than backslash and newline" % name)
                else:
                    if rest not in TYPES:
                        err(n, "unknown type %r for %s" % (rest, name))
                    if name in types:
                        err(n, "second TYPE for %s" % name)
                    types[name] = rest
                    if rest == "counter" and not name.endswith("_total"):
                        err(n, "counter %s does not end in _total" % name)
            elif not line.startswith("# ") and line != "#":
                err(n, "comment without a space after '#'")
            continue
        try:
            name, labels, value = parse_sample(line)
        except ValueError as e:
            err(n, str(e))
            continue
        n_samples += 1
        fam = family_of(name, types)
        if prefix and not name.startswith(prefix):
            err(n, "metric %s does not start with %s" % (name, prefix))
        if fam not in helps:
            err(n, "sample of %s without a HELP before it" % fam)
        if fam not in types:
            err(n, "sample of %s without a TYPE before it" % fam)
        if fam != current:
            if fam in closed:
                err(n, "samples of %s are not grouped together" % fam)
            if current is not None:
                closed.add(current)
            current = fam
        with_samples.add(fam)
        key = (name, tuple(sorted(labels)))
        if key in series:
            err(n, "duplicate series %s" % line.rsplit(" ", 1)[0])
        series.add(key)
        t = types.get(fam)
        if t == "counter":
            if name != fam:
                err(n, "counter sample %s is not named like its family %s" % (name, fam))
            if value.startswith("-") or value == "NaN":
                err(n, "counter %s has value %s" % (name, value))
        if t == "histogram" and name == fam + "_bucket" and "le" not in dict(labels):
            err(n, "histogram bucket without an le label")
    for name in sorted(set(types) - helps):
        err(0, "TYPE without HELP for %s" % name)
    families = set(types) | helps
    return errors[:MAX_ERRORS], len(families), n_samples


GOOD = """# HELP ntp_stratum Stratum.
# TYPE ntp_stratum gauge
ntp_stratum 2
# HELP ntp_worker_drops_total Drops.
# TYPE ntp_worker_drops_total counter
ntp_worker_drops_total{worker="0",reason="bad_udp_checksum"} 7
ntp_worker_drops_total{worker="0",reason="tx_full",} 0
# a comment
# HELP ntp_x_seconds Odd values. Backslash \\\\ and newline \\n escaped.
# TYPE ntp_x_seconds gauge
ntp_x_seconds{k="a\\"b\\\\c\\nd"} -1.5e-06
ntp_x_seconds{k="inf"} +Inf
ntp_x_seconds{k="-inf"} -Inf
ntp_x_seconds{k="nan"} NaN
ntp_x_seconds{k="ts"} .5 1712345678000
ntp_x_seconds{k="\u00e9"} 18446744073709551615
# HELP ntp_h_seconds A histogram.
# TYPE ntp_h_seconds histogram
ntp_h_seconds_bucket{le="0.1"} 1
ntp_h_seconds_bucket{le="+Inf"} 2
ntp_h_seconds_sum 0.3
ntp_h_seconds_count 2
"""

H = "# HELP ntp_a A.\n# TYPE ntp_a gauge\n"
HC = "# HELP ntp_a_total A.\n# TYPE ntp_a_total counter\n"
BAD = [
    ("no final newline", H + "ntp_a 1"),
    ("empty", ""),
    ("empty line", H + "ntp_a 1\n\n"),
    ("CRLF", H + "ntp_a 1\r\n"),
    ("no HELP", "# TYPE ntp_a gauge\nntp_a 1\n"),
    ("no TYPE", "# HELP ntp_a A.\nntp_a 1\n"),
    ("TYPE after samples", "# HELP ntp_a A.\nntp_a 1\n# TYPE ntp_a gauge\n"),
    ("second HELP", H + "# HELP ntp_a again\nntp_a 1\n"),
    ("second TYPE", H + "# TYPE ntp_a gauge\nntp_a 1\n"),
    ("unknown type", "# HELP ntp_a A.\n# TYPE ntp_a sometimes\nntp_a 1\n"),
    ("counter without _total", "# HELP ntp_a A.\n# TYPE ntp_a counter\nntp_a 1\n"),
    ("negative counter", HC + "ntp_a_total -1\n"),
    ("NaN counter", HC + "ntp_a_total NaN\n"),
    ("duplicate series", H + "ntp_a 1\nntp_a 2\n"),
    ("duplicate series, label order", H + 'ntp_a{x="1",y="2"} 1\nntp_a{y="2",x="1"} 1\n'),
    ("duplicate label", H + 'ntp_a{x="1",x="2"} 1\n'),
    ("bad escape", H + 'ntp_a{x="a\\tb"} 1\n'),
    ("unescaped quote", H + 'ntp_a{x="a"b"} 1\n'),
    ("unquoted label", H + "ntp_a{x=1} 1\n"),
    ("unterminated labels", H + 'ntp_a{x="1" 1\n'),
    ("reserved label", H + 'ntp_a{__x="1"} 1\n'),
    ("bad label name", H + 'ntp_a{1x="1"} 1\n'),
    ("bad value", H + "ntp_a 1.2.3\n"),
    ("lowercase inf", H + "ntp_a inf\n"),
    ("Inf without sign", H + "ntp_a Inf\n"),
    ("hex value", H + "ntp_a 0x10\n"),
    ("no value", H + "ntp_a\n"),
    ("two spaces", H + "ntp_a  1\n"),
    ("trailing space", H + "ntp_a 1 \n"),
    ("bad timestamp", H + "ntp_a 1 1.5\n"),
    ("bad metric name", H + "1ntp_a 1\n"),
    ("not grouped", H + 'ntp_a{x="1"} 1\n# HELP ntp_b B.\n# TYPE ntp_b gauge\nntp_b 1\nntp_a{x="2"} 1\n'),
    ("prefix", "# HELP other A.\n# TYPE other gauge\nother 1\n"),
    ("comment without space", H + "#x\nntp_a 1\n"),
    ("bad HELP escape", "# HELP ntp_a A \\q.\n# TYPE ntp_a gauge\nntp_a 1\n"),
    ("invalid UTF-8", (H + 'ntp_a{x="\xff"} 1\n').encode("latin-1")),
]


def selftest():
    failures = 0
    errs, fams, samples = check(GOOD, "ntp_")
    if errs or (fams, samples) != (3 + 1, 13):
        print("selftest: good input: %s (%d families, %d samples)" % (errs, fams, samples))
        failures += 1
    for what, text in BAD:
        errs, _, _ = check(text, "ntp_")
        if not errs:
            print("selftest: %s: not detected" % what)
            failures += 1
    # Error lines carry line numbers.
    errs, _, _ = check(H + "ntp_a 1\nntp_a 2\n", "ntp_")
    if not errs or not errs[0].startswith("line 4: duplicate series"):
        print("selftest: line numbers: %s" % errs)
        failures += 1
    if failures:
        print("selftest: %d failures" % failures)
        return 1
    print("selftest: ok (%d good families, %d bad inputs detected)" % (fams, len(BAD)))
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description="Strict Prometheus text format 0.0.4 checker.")
    ap.add_argument("file", nargs="?", default="-", help="exposition text (default: stdin)")
    ap.add_argument("--prefix", default="", help="require every metric name to start with this")
    ap.add_argument("--selftest", action="store_true", help="check the checker on good and bad inputs")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as e:
        print("promcheck: %s" % e, file=sys.stderr)
        return 2
    errors, families, samples = check(data, args.prefix)
    if errors:
        for e in errors:
            print(e)
        return 1
    print("ok: %d families, %d samples" % (families, samples))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
