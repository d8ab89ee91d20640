#!/usr/bin/env python3
"""Checks that no source file includes a header of a folder its folder may
not depend on (cmake/layers.cmake, docs/architecture.md).

usage: layering_test.py ROOT FOLDER:DEP,DEP ...
Prints each violation as FILE:LINE and exits 1 if there is any."""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(path, folders):
    """The longest listed folder that `path` (relative to ROOT) lies in."""
    best = None
    for f in folders:
        if path.startswith(f + "/") and (best is None or len(f) > len(best)):
            best = f
    return best


def main():
    root = sys.argv[1]
    allowed = {}
    for row in sys.argv[2:]:
        folder, _, deps = row.partition(":")
        allowed[folder] = {d for d in deps.split(",") if d} | {folder}
    bad = 0
    checked = 0
    for folder in allowed:
        top = os.path.join(root, folder)
        for dirpath, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith((".cc", ".h")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                if folder_of(path, allowed) != folder:
                    continue  # a nested folder checks its own files
                checked += 1
                with open(os.path.join(root, path), encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = folder_of(m.group(1), allowed)
                        if target is None or target in allowed[folder]:
                            continue
                        print(f"{path}:{lineno}: includes {m.group(1)}, but "
                              f"{folder}/ may depend only on "
                              f"{', '.join(sorted(allowed[folder]))}")
                        bad += 1
    print(f"layering: {checked} files checked, {bad} violation(s)")
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
