#!/usr/bin/env python3
"""The layering of the tree, and a check of every #include and every meson
dependency against it.

Each folder of production code sits on a floor and may use only the folders
named for it (its own included). `meson setup` runs this script and stops on
a violation; the `layers` unit test runs it again on every test run.

    check_layers.py SOURCE_ROOT          check the tree, print violations
    check_layers.py --selftest           check that a violation is caught
"""
import os
import re
import sys
import tempfile

# folder (or file) -> the folders its code may include. The longest matching
# prefix of a path wins. README "Layout" shows the same table.
LAYERS = {
    "proto": ["proto"],
    "hwclock": ["proto", "hwclock"],
    "config": ["proto", "config"],
    "control/ntp": ["proto", "hwclock", "config", "control/ntp"],
    "control/status": ["proto", "control/ntp", "control/status"],
    "control/ntpctl.cc": ["proto", "config", "control/status"],
    "control": ["proto", "hwclock", "config", "control"],
    "dataplane": ["proto", "hwclock", "config", "dataplane"],
}

# meson dependency variables -> the folder whose library they are.
DEPS = {
    "proto_dep": "proto",
    "hwclock_dep": "hwclock",
    "config_dep": "config",
    "ntpcore_dep": "control/ntp",
    "status_dep": "control/status",
    "ctl_dep": "control",
    "dpcore_dep": "dataplane",
    "dpdpdk_dep": "dataplane",
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
DEP_WORD = re.compile(r"\b(\w+_dep)\b")


def layer_of(rel):
    best = None
    for prefix in LAYERS:
        if rel == prefix or rel.startswith(prefix + "/"):
            if best is None or len(prefix) > len(best):
                best = prefix
    return best


def folder_of(header):
    """The layer folder a header path belongs to ("control/ntp/engine.h" -> "control/ntp")."""
    return layer_of(header)


def allowed(layer, target):
    """May code of `layer` use `target` (a layer key)? control may use its subfolders."""
    if target is None:
        return True  # not production code (tests/...): not ours to police here
    for a in LAYERS[layer]:
        if target == a or (a == "control" and layer == "control" and target.startswith("control/")):
            return True
    return False


def check(root):
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.startswith("build")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            layer = layer_of(rel)
            if layer is None:
                continue
            if name.endswith((".h", ".cc")):
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    header = m.group(1)
                    target = folder_of(header)
                    if header.startswith("tests/"):
                        problems.append(f"{rel}: includes {header}: production code may not include tests/")
                    elif not allowed(layer, target):
                        line = text.count("\n", 0, m.start()) + 1
                        problems.append(f"{rel}:{line}: includes {header} ({target}), above its floor; "
                                        f"{layer} may use {', '.join(LAYERS[layer])}")
            elif name == "meson.build":
                with open(path, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        code = line.split("#", 1)[0]
                        for m in DEP_WORD.finditer(code):
                            target = DEPS.get(m.group(1))
                            if target is None or "declare_dependency" in code and code.strip().startswith(m.group(1)):
                                continue
                            if not allowed(layer, target) and target != layer:
                                problems.append(f"{rel}:{n}: links {m.group(1)} ({target}), above its floor; "
                                                f"{layer} may use {', '.join(LAYERS[layer])}")
    return problems


def selftest():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "control", "ntp"))
        os.makedirs(os.path.join(d, "dataplane"))
        with open(os.path.join(d, "control", "ntp", "engine.h"), "w") as f:
            f.write('#include "control/status/status.h"\n#include "hwclock/servo.h"\n')
        with open(os.path.join(d, "dataplane", "meson.build"), "w") as f:
            f.write("x = static_library('x', dependencies : [proto_dep, ctl_dep])\n")
        with open(os.path.join(d, "dataplane", "ok.cc"), "w") as f:
            f.write('#include "proto/inet.h"\n#include "config/config.h"\n')
        p = check(d)
        want = ["control/ntp/engine.h:1: includes control/status/status.h", "dataplane/meson.build:1: links ctl_dep"]
        ok = len(p) == 2 and all(any(x.startswith(w) for x in p) for w in want)
        print("\n".join(p))
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
