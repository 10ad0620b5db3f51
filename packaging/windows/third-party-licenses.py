#!/usr/bin/env python3
"""Writes THIRD-PARTY-LICENSES.txt for the Windows package (scripts/windows-build).

Reads `cargo metadata` for the Windows target, walks the app's normal (not dev, not build)
dependencies, and lists each crate with its version and licence, followed by every licence
file the crate ships (LICENSE*, COPYING*, NOTICE*; identical texts once). Adds the C code that is
linked in statically: libopus (built by audiopus_sys) and the MinGW-w64/GCC runtime pieces.

usage: third-party-licenses.py TARGET OUT_FILE
"""

import json
import os
import subprocess
import sys

target, out_path = sys.argv[1], sys.argv[2]
meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target]
    )
)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(p["id"] for p in meta["packages"] if p["name"] == "voxboard" and p["source"] is None)

# Normal dependencies only: dev-dependencies are never shipped, build-dependencies and proc-macros
# (with what only they use) run at build time.
def proc_macro(pid):
    return any("proc-macro" in t["kind"] for t in packages[pid]["targets"])


seen, todo = set(), [root]
while todo:
    pid = todo.pop()
    if pid in seen or proc_macro(pid):
        continue
    seen.add(pid)
    for dep in nodes[pid]["deps"]:
        if any(k["kind"] is None for k in dep["dep_kinds"]):
            todo.append(dep["pkg"])

crates = sorted(
    (packages[pid] for pid in seen if packages[pid]["source"] is not None),
    key=lambda p: (p["name"], p["version"]),
)


def licence_files(pkg):
    base = os.path.dirname(pkg["manifest_path"])
    found = []
    for name in sorted(os.listdir(base)):
        upper = name.upper()
        if upper.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE")):
            path = os.path.join(base, name)
            if os.path.isfile(path):
                found.append(path)
    if pkg["name"] == "audiopus_sys":  # the bundled libopus sources
        for sub in ("opus/COPYING", "opus/LICENSE_PLEASE_READ.txt"):
            path = os.path.join(base, sub)
            if os.path.isfile(path):
                found.append(path)
    return found


texts = {}  # text -> first crate that ships it
sections = []
for p in crates:
    files = licence_files(p)
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
        label = f"{p['name']} {p['version']}: {os.path.relpath(path, os.path.dirname(p['manifest_path']))}"
        if text in texts:
            continue
        texts[text] = label
        sections.append((label, text))

with open(out_path, "w", encoding="utf-8", newline="\r\n") as out:
    out.write("Voxboard for Windows: third-party software\n")
    out.write("==========================================\n\n")
    out.write(
        "voxboard.exe contains the following Rust crates, compiled in statically, under the\n"
        "licences their authors chose (SPDX expressions as declared in each crate):\n\n"
    )
    width = max(len(f"{p['name']} {p['version']}") for p in crates)
    for p in crates:
        name = f"{p['name']} {p['version']}"
        out.write(f"  {name:<{width}}  {p.get('license') or p.get('license_file') or 'see below'}\n")
    out.write(
        "\nIt also contains C code linked in statically:\n"
        "  - libopus (Xiph.Org Foundation and contributors), BSD-3-Clause, built from the sources\n"
        "    that audiopus_sys ships (its licence text follows below);\n"
        "  - the MinGW-w64 runtime (startup code and import libraries; ZPL 2.1 and public domain);\n"
        "  - libssp and libgcc from GCC, under the GPL with the GCC Runtime Library Exception,\n"
        "    which allows them in programs under any licence.\n"
    )
    out.write("\nLicence texts, as shipped by each crate (each distinct text once)\n")
    out.write("=================================================================\n")
    for label, text in sections:
        out.write(f"\n----- {label} -----\n\n{text}\n")
print(f"{out_path}: {len(crates)} crates, {len(sections)} licence texts", file=sys.stderr)
