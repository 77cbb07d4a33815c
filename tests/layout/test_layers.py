"""The floor plan holds: every folder of src/ may include only the headers of
the layers docs/architecture.md allows it, and that document's table lists
exactly the folders there are.

The link lines in CMakeLists.txt catch a call across the rule; this catches
an include of another layer's header that compiles (include/ is on every
folder's path) but breaks the rule all the same.
"""
import os
import re

SOURCE_DIR = os.environ.get("VSMTPD_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(SOURCE_DIR, "src")
INCLUDE = os.path.join(SOURCE_DIR, "include")
LAYERS = {"mail": set(), "lib": {"mail"}, "rules": {"mail", "lib"}}
ROLES = {"session", "queue", "delivery", "ctl", "runner"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folders():
    return sorted(d for d in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, d)))


def allowed(folder):
    """The folders whose public headers folder may include."""
    if folder in LAYERS:
        return LAYERS[folder] | {folder}
    if folder == "master":
        return set(folders())
    return set(LAYERS) | {folder}


def owner(header):
    """The folder whose sources implement include/header."""
    stem = header[:-2]
    for d in folders():
        if os.path.exists(os.path.join(SRC, d, stem + ".c")):
            return d
    raise AssertionError(f"include/{header}: no src/*/{stem}.c implements it")


def sources(folder):
    d = os.path.join(SRC, folder)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".c", ".h")))


def test_every_include_follows_the_dependency_rule():
    wrong = []
    public = set(os.listdir(INCLUDE))
    for folder in folders():
        ok = allowed(folder)
        private = {f for f in os.listdir(os.path.join(SRC, folder)) if f.endswith(".h")}
        for path in sources(folder):
            with open(path, encoding="utf-8") as f:
                for header in INCLUDE_RE.findall(f.read()):
                    if header in private:
                        continue
                    assert header in public, f"{path}: includes {header}, which is nowhere"
                    if owner(header) not in ok:
                        wrong.append(f"{os.path.relpath(path, SOURCE_DIR)} includes {header} "
                                     f"of src/{owner(header)}/")
    for header in sorted(public):
        with open(os.path.join(INCLUDE, header), encoding="utf-8") as f:
            for inc in INCLUDE_RE.findall(f.read()):
                if owner(inc) not in allowed(owner(header)):
                    wrong.append(f"include/{header} includes {inc} of src/{owner(inc)}/")
    assert wrong == []


def test_private_headers_stay_in_their_folder():
    public = set(os.listdir(INCLUDE))
    for folder in folders():
        for f in os.listdir(os.path.join(SRC, folder)):
            assert not (f.endswith(".h") and f in public), f"{folder}/{f} is also in include/"


def test_the_architecture_document_lists_every_folder():
    with open(os.path.join(SOURCE_DIR, "docs", "architecture.md"), encoding="utf-8") as f:
        doc = f.read()
    plan = doc[doc.index("## The floor plan"):]
    plan = plan[:plan.index("\n## ", 5)]
    listed = re.findall(r"^\| `src/([a-z]+)/` \|", plan, re.M)
    assert sorted(listed) == folders()
    assert set(folders()) == set(LAYERS) | ROLES | {"master"}
    for folder in folders():
        row = re.search(r"^\| `src/%s/` \|.*$" % folder, plan, re.M).group(0)
        for path in sources(folder):
            name = os.path.basename(path)
            assert not name.endswith(".c") or f"`{name}`" in row, \
                f"docs/architecture.md's floor plan does not name src/{folder}/{name}"
