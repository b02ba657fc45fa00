#!/usr/bin/env python3
"""The layering of the tree, and a check of every #include and every meson
dependency against it.

Each folder of production code sits on a floor and may use only the folders
named for it (its own included). `meson setup` runs this script and stops on
a violation; the `layers` unit test runs it again on every test run.

    check_layers.py SOURCE_ROOT          check the tree, print violations
    check_layers.py --selftest           check that each kind of violation is caught
"""
import fnmatch
import os
import posixpath
import re
import sys
import tempfile

# folder (or file) -> the folders its code may include. The longest matching
# prefix of a path wins. README "Layout" shows the same table.
LAYERS = {
    "proto": ["proto"],
    "crypto": ["proto", "crypto"],
    "hwclock": ["proto", "hwclock"],
    "config": ["proto", "crypto", "config"],
    "control/ntp": ["proto", "hwclock", "config", "crypto", "control/ntp"],
    "control/status": ["proto", "control/ntp", "control/status"],
    "control/ntpctl.cc": ["proto", "config", "control/status"],
    "control": ["proto", "hwclock", "config", "crypto", "control"],
    "dataplane/core": ["proto", "crypto", "dataplane/core"],
    "dataplane": ["proto", "hwclock", "config", "crypto", "dataplane"],
}

# Layers made of a list of files rather than a folder; they win over LAYERS' prefixes.
FILE_LAYERS = {
    # The pure packet logic (dpcore_lib): unit-tested, fuzzed and benchmarked without DPDK.
    "dataplane/core": ["dataplane/responder.*", "dataplane/frame.*", "dataplane/inet.h", "dataplane/neighbour.h",
                       "dataplane/ratelimit.*", "dataplane/nts_responder.*"],
}

# Layers that may not include DPDK's headers (<rte_*.h>).
NO_DPDK = {"dataplane/core"}

# meson dependency variables -> the folder whose library they are.
DEPS = {
    "proto_dep": "proto",
    "crypto_dep": "crypto",
    "hwclock_dep": "hwclock",
    "config_dep": "config",
    "ntpcore_dep": "control/ntp",
    "status_dep": "control/status",
    "ctl_dep": "control",
    "dpcore_dep": "dataplane",
    "dpdpdk_dep": "dataplane",
}

# meson library variables (link_with, link_whole, objects) -> the folder they are built from.
LIBS = {
    "proto_lib": "proto",
    "crypto_lib": "crypto",
    "hwclock_lib": "hwclock",
    "config_lib": "config",
    "ntpcore_lib": "control/ntp",
    "status_lib": "control/status",
    "ctl_lib": "control",
    "dpcore_lib": "dataplane",
    "dpdpdk_lib": "dataplane",
}

# meson targets held to a rule of their own rather than their folder's:
# (function, first argument) -> layer. (static_library('ntpctl') is ctl_lib.)
TARGETS = {
    ("executable", "ntpctl"): "control/ntpctl.cc",
    ("static_library", "ntpdpcore"): "dataplane/core",
}

SOURCES = (".h", ".hh", ".hpp", ".cc", ".cpp", ".cxx", ".inc", ".ipp", ".tcc")
NOT_PRODUCTION = {"tests", "deploy", "docs"}  # top-level; .ci and build* are not walked at all

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*(?:"([^"\n]+)"|<([^>\n]+)>)', re.M)
# C/C++ strings and character literals (kept: an include path is one) and comments (blanked).
C_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', re.S)
PP_IF = re.compile(r"[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)")
# meson strings (collected, contents blanked) and comments (blanked).
MESON_TOKEN = re.compile(r"'''.*?'''|'(?:\\.|[^'\\\n])*'|#[^\n]*", re.S)
ASSIGN = re.compile(r"^[ \t]*(\w+)[ \t]*=(?!=)[ \t]*(?:(\w+)[ \t]*\()?", re.M)
LIBRARY_CALLS = {"static_library", "library", "shared_library", "both_libraries"}
TARGET_CALL = re.compile(r"\b(executable|static_library|library|shared_library|both_libraries)\s*\(\s*'")


def layer_of(rel):
    for layer, patterns in FILE_LAYERS.items():
        if any(fnmatch.fnmatchcase(rel, p) for p in patterns):
            return layer
    best = None
    for prefix in LAYERS:
        if (rel == prefix or rel.startswith(prefix + "/")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def allowed(layer, target):
    """May code of `layer` use `target` (a layer key)? A layer may use itself (a file rule such as
    control/ntpctl.cc does not list itself) and its sublayers (control: control/ntp)."""
    return target in LAYERS[layer] or (target + "/").startswith(layer + "/")


def blank(s):
    return re.sub(r"[^\n]", " ", s)  # keeps offsets and line numbers


def c_code(text):
    """The text without comments and #if 0 blocks, line numbers kept."""
    text = C_TOKEN.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else blank(m.group(0)), text)
    lines, dead = text.split("\n"), []  # dead: one entry per open #if, True while its branch is skipped
    for i, line in enumerate(lines):
        m = PP_IF.match(line)
        if m and m.group(1).startswith("if"):
            dead.append(m.group(1) == "if" and m.group(2).strip() in ("0", "false"))
        elif m and m.group(1) in ("elif", "else") and dead:
            dead[-1] = False  # the other branch of an #if 0 may be compiled
        elif m and dead:
            dead.pop()
        if any(dead):
            lines[i] = ""
    return "\n".join(lines)


def meson_code(text):
    """(code, strings): text with comments and string contents blanked, and {offset: value} of its strings."""
    strings = {}

    def sub(m):
        s = m.group(0)
        if s[0] != "'":
            return blank(s)
        q = 3 if s.startswith("'''") else 1
        strings[m.start()] = s[q:-q]
        return s[:q] + blank(s[q:-q]) + s[-q:]

    return MESON_TOKEN.sub(sub, text), strings


def close_paren(code, i):
    """The offset of the parenthesis closing the one at code[i]."""
    depth = 0
    for j in range(i, len(code)):
        depth += {"(": 1, ")": -1}.get(code[j], 0)
        if depth == 0:
            return j
    return len(code)


def target_of(root, p):
    """What path p (normalised, root-relative) belongs to: a layer, "tests", "X/ not in the layer table", or None
    (outside the tree, or a file of the root: not ours to police)."""
    if p == "." or p == ".." or p.startswith("../") or p.startswith("/"):
        return None
    first = p.split("/")[0]
    if first == "tests":
        return "tests"
    layer = layer_of(p)
    if layer is None and os.path.isdir(os.path.join(root, first)) and os.path.exists(os.path.join(root, p)):
        return f"{first}/ not in the layer table"
    return layer


def resolve(root, folder, header, quoted):
    """The root-relative path an include names. Like the compiler: a quoted one is looked up beside the
    including file, then from the root (-I of `inc`); if neither exists, ./ and ../ are beside the file."""
    here, top = posixpath.normpath(posixpath.join(folder, header)), posixpath.normpath(header)
    if not quoted:
        return top
    for p in (here, top):
        if os.path.exists(os.path.join(root, p)):
            return p
    return here if header.startswith(("./", "../")) else top


def report(where, verb, what, layer, target):
    """The violation of `layer` using `what` (of `target`), or None if it may."""
    if target is None or target in LAYERS and allowed(layer, target):
        return None
    if target == "tests":
        return f"{where}: {verb} {what}: production code may not use tests/"
    return f"{where}: {verb} {what} ({target}), above its floor; {layer} may use {', '.join(LAYERS[layer])}"


def check_source(root, rel, layer, text):
    problems, code = [], c_code(text)
    layer_dirs = {k.split("/")[0] for k in LAYERS} | {"tests"}
    for m in INCLUDE.finditer(code):
        header, quoted = m.group(1) or m.group(2), m.group(1) is not None
        where = f"{rel}:{code.count(chr(10), 0, m.start()) + 1}"
        what = header if quoted else f"<{header}>"
        if not quoted and layer in NO_DPDK and header.startswith("rte_"):
            problems.append(report(where, "includes", what, layer, "DPDK"))
        elif quoted or header.split("/")[0] in layer_dirs:  # other <...> are system headers
            target = target_of(root, resolve(root, posixpath.dirname(rel), header, quoted))
            problems.append(report(where, "includes", what, layer, target))
    return [p for p in problems if p]


def meson_libraries(root, meson_files):
    """{name: top-level folder it is defined in} of our libraries and of the dependencies declared over
    them (anything else, dependency()/find_library(), is from outside)."""
    ours, decls = {}, []
    for rel in meson_files:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            code, _ = meson_code(f.read())
        for m in ASSIGN.finditer(code):
            if m.group(2) in LIBRARY_CALLS:
                ours[m.group(1)] = rel.split("/")[0]
            elif m.group(2) == "declare_dependency":
                body = code[m.end() - 1:close_paren(code, m.end() - 1)]
                decls.append((m.group(1), rel.split("/")[0], set(re.findall(r"\w+", body))))
    grown = True
    while grown:  # a dependency over one of ours is ours too
        grown = False
        for name, top, words in decls:
            if name not in ours and words & ours.keys():
                ours[name], grown = top, True
    return ours


def check_meson(root, rel, layer, text, ours):
    problems, (code, strings) = [], meson_code(text)
    folder = posixpath.dirname(rel)
    spans = []  # (start, end, layer) of the targets with a rule of their own
    for m in TARGET_CALL.finditer(code):
        rule = TARGETS.get((m.group(1), strings.get(m.end() - 1)))
        if rule:
            spans.append((m.start(), close_paren(code, code.index("(", m.start())), rule))

    def at(pos):
        where = f"{rel}:{code.count(chr(10), 0, pos) + 1}"
        return where, next((r for s, e, r in spans if s <= pos <= e), layer)

    assigned = {m.start(1) for m in ASSIGN.finditer(code)}  # the name being defined is no use of it
    for m in re.finditer(r"\b\w+\b", code):
        name = m.group(0)
        if m.start() in assigned or name not in ours and name not in DEPS and name not in LIBS:
            continue
        where, here = at(m.start())
        target = DEPS.get(name) or LIBS.get(name) or ("tests" if ours[name] == "tests" else None)
        if target is None:
            table = "DEPS" if name.endswith("_dep") else "LIBS"
            problems.append(f"{where}: unknown library {name}: add it to {table}")
        else:
            problems.append(report(where, "links", name, here, target))
    for pos, s in strings.items():  # source files and include_directories() reaching into another folder
        if s and ("/" in s or os.path.exists(os.path.join(root, folder, s))):
            where, here = at(pos)
            target = target_of(root, posixpath.normpath(posixpath.join(folder, s)))
            problems.append(report(where, "uses", f"'{s}'", here, target))
    return [p for p in problems if p]


def check(root):
    root = os.path.normpath(root)
    sources, meson_files = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden folders anywhere; build trees only at the top (control/build/ would be ours).
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (dirpath == root and d.startswith("build")))
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if name.endswith(SOURCES):
                sources.append(rel)
            elif name == "meson.build":
                meson_files.append(rel)
    problems = []
    for rel in sources:
        layer = layer_of(rel)
        if layer is None:
            top = rel.split("/")[0] if "/" in rel else "."
            if top not in NOT_PRODUCTION:
                problems.append(f"{rel}: {top}/ is not in the layer table")
            continue
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            problems += check_source(root, rel, layer, f.read())
    ours = meson_libraries(root, meson_files)
    for rel in meson_files:
        layer = layer_of(rel)
        if layer is not None:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                problems += check_meson(root, rel, layer, f.read(), ours)
    return problems


# The selftest tree: every kind of violation planted once (the number in the
# comment is the review item it guards), next to code that must pass.
SELFTEST_TREE = {
    "proto/p.h": "",
    "control/x.h": '#include "proto/p.h"\n',
    "control/steering.cc": "",
    "control/ntp/engine.h": '#include "control/status/status.h"\n#include "hwclock/servo.h"\n',
    "control/ntpctl.cc": '#include "control/status/status.h"\n#include "control/ntp/engine.h"\n',  # 6 (includes)
    "control/meson.build": (
        "ctl_lib = static_library('ntpctl', 'x.cc', dependencies : [ntpcore_dep])\n"  # same name, not the CLI
        "executable('ntpctl', 'ntpctl.cc', dependencies : [status_dep,\n"
        "  ntpcore_dep])\n"  # 6
        "executable('ntp-control', 'main.cc', dependencies : [ctl_dep, ntpcore_dep])\n"),
    "control/build/gen.cc": '#include "dataplane/worker.h"\n',  # 8
    "build/gen.cc": '#include "dataplane/worker.h"\n',  # a build tree: not walked
    "tools/gen.h": "",  # 1: not in the layer table
    "deploy/tool.cc": '#include "control/x.h"\n',  # not production
    "tests/support/fake.h": "",
    "tests/meson.build": ("support_lib = static_library('s', 'support/fake.cc')\n"
                          "support_dep = declare_dependency(link_with : support_lib)\n"),
    "meson.build": ("toml_dep = dependency('tomlplusplus')\n"
                    "rte_ring_dep = declare_dependency(dependencies : [dpdk_dep.partial_dependency(compile_args : true),\n"
                    "  cpp.find_library('rte_ring')])\n"),
    "hwclock/meson.build": ("hwclock_lib = static_library('h', 'a.cc', dependencies : [proto_dep, toml_dep])\n"
                            "hwclock_dep = declare_dependency(link_with : hwclock_lib)\n"
                            "extra_lib = static_library('extra', 'b.cc')\n"
                            "extra_dep = declare_dependency(link_with : extra_lib)\n"  # 5
                            "t = static_library('t', dependencies : [support_dep])\n"),  # 5: a tests/ library
    "dataplane/ok.cc": '#include "proto/inet.h"\n#include "config/config.h"\n#include "dataplane/frame.h"\n',
    "dataplane/rel.cc": ('#include "../control/x.h"\n'  # 1
                         '#include "./control/x.h"\n'  # 1
                         '#include "dataplane/../control/x.h"\n'  # 1
                         '#include "tools/gen.h"\n'  # 1: a folder not in the table
                         '#include <toml++/toml.h>\n#include "httplib.h"\n#include "../../outside.h"\n'
                         '#include "tests/support/fake.h"\n'
                         '#include "../control/missing.h"\n'),  # 1: beside the file, though absent
    "dataplane/angle.cc": "#include <control/x.h>\n#include <cstdint>\n",  # 2
    "dataplane/frame.cc": ('#include "dataplane/frame.h"\n#include "responder.h"\n#include "proto/p.h"\n'
                           '#include "dataplane/port.h"\n'  # 7
                           "#include <rte_mbuf.h>\n"),  # 7
    "dataplane/worker.cc": '#include "dataplane/frame.h"\n#include "dataplane/port.h"\n#include <rte_mbuf.h>\n',
    "dataplane/comments.cc": ('/*\n#include "control/x.h"\n*/\n'  # 10: none of these
                              '#if 0\n#include "control/x.h"\n#if FOO\n#endif\n#include "control/x.h"\n'
                              '#else\n#include "proto/p.h"\n#endif\n'
                              "const char* s = \"/*\";\n#include \"control/x.h\"\n// */\n"  # line 13: no comment
                              '#if 0\n#else\n#include "control/x.h"\n#endif\n'),  # 10: line 17, after #else
    "dataplane/meson.build": (
        "x = static_library('x', dependencies : [proto_dep, ctl_dep])\n"
        "y = static_library('y', '../control/steering.cc', link_with : ntpcore_lib)\n"  # 4 (twice)
        "z = static_library('z', include_directories : include_directories('../control'))\n"  # 4
        "dpcore_lib = static_library('ntpdpcore', 'frame.cc', 'worker.cc',\n"  # 7: the core takes a DPDK file
        "  dependencies : [proto_dep, rte_ring_dep, extra_dep])\n"  # 5
        "# ctl_dep in a comment\n"
        "w = static_library('w#1', dependencies : [ctl_dep])\n"),  # 9
}
for _ext in ("hh", "hpp", "cpp", "cxx", "inc", "ipp", "tcc"):  # 3
    SELFTEST_TREE[f"control/ntp/e.{_ext}"] = '#include "dataplane/port.h"\n'

SELFTEST_WANT = [
    "control/ntp/engine.h:1: includes control/status/status.h (control/status)",
    "control/ntpctl.cc:2: includes control/ntp/engine.h (control/ntp)",
    "control/meson.build:3: links ntpcore_dep (control/ntp), above its floor; control/ntpctl.cc may use",
    "control/build/gen.cc:1: includes dataplane/worker.h (dataplane)",
    "tools/gen.h: tools/ is not in the layer table",
    "hwclock/meson.build:4: unknown library extra_lib: add it to LIBS",
    "hwclock/meson.build:5: links support_dep: production code may not use tests/",
    "dataplane/rel.cc:1: includes ../control/x.h (control)",
    "dataplane/rel.cc:2: includes ./control/x.h (control)",
    "dataplane/rel.cc:3: includes dataplane/../control/x.h (control)",
    "dataplane/rel.cc:4: includes tools/gen.h (tools/ not in the layer table)",
    "dataplane/rel.cc:8: includes tests/support/fake.h: production code may not use tests/",
    "dataplane/angle.cc:1: includes <control/x.h> (control)",
    "dataplane/frame.cc:4: includes dataplane/port.h (dataplane), above its floor; dataplane/core may use",
    "dataplane/frame.cc:5: includes <rte_mbuf.h> (DPDK)",
    "dataplane/comments.cc:13: includes control/x.h (control)",
    "dataplane/comments.cc:17: includes control/x.h (control)",
    "dataplane/rel.cc:9: includes ../control/missing.h (control)",
    "dataplane/meson.build:1: links ctl_dep (control)",
    "dataplane/meson.build:2: links ntpcore_lib (control/ntp)",
    "dataplane/meson.build:2: uses '../control/steering.cc' (control)",
    "dataplane/meson.build:3: uses '../control' (control)",
    "dataplane/meson.build:4: uses 'worker.cc' (dataplane), above its floor; dataplane/core may use",
    "dataplane/meson.build:5: unknown library extra_dep: add it to DEPS",
    "dataplane/meson.build:7: links ctl_dep (control)",
] + [f"control/ntp/e.{e}:1: includes dataplane/port.h (dataplane)" for e in ("hh", "hpp", "cpp", "cxx", "inc", "ipp", "tcc")]


def selftest():
    with tempfile.TemporaryDirectory() as d:
        for rel, text in SELFTEST_TREE.items():
            os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(d, rel), "w") as f:
                f.write(text)
        p = check(d)
    print("\n".join(p))
    # Exactly the planted ones: each report matches one wanted prefix, and each prefix one report.
    hits = [[w for w in SELFTEST_WANT if x.startswith(w)] for x in p]
    ok = all(len(h) == 1 for h in hits) and sorted(w for h in hits for w in h) == sorted(SELFTEST_WANT)
    for w in SELFTEST_WANT:
        if not any(x.startswith(w) for x in p):
            print("missed:", w)
    print("selftest:", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--selftest":
        return selftest()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(sys.argv[1])
    for p in problems:
        print(p)
    print(f"layers: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
