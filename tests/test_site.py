"""The reading site (site.py, issue 42): every role on every compare page, every line once on its page, every
paper reference a link, balanced HTML, and a real browser's screenshots that are not blank.

The site is built once into site/ (as `make site` does), so the screenshots stay there for a person to look at.
The roles and references are found here independently of site.py: by name with `ast`, and by a plain regex.
"""
import ast
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
# DESIGN.md's skeleton, in file order; "helpers" and "__init__" are site.py's names for the method's own
# definitions and the model's constructor
SKELETON = ["docstring", "Config", "sample", "helpers", "__init__", "check_batch", "encode", "decode", "loss",
            "predict", "forward", "features", "reconstruct"]
STAGES = SKELETON[5:]
REF = re.compile(r"\b(?:Sec|Eq|Table|Fig)s?\b\.?(?=[ \t]*(?:\d|$))")   # Sec. 3.2, Eq. 3, Table 3b, Fig. 6
VOID = {"meta", "link", "br", "img", "hr", "input", "source", "wbr"}


def load_site_module():
    # by path: `import site` is Python's own start-up module
    spec = importlib.util.spec_from_file_location("site_builder", ROOT / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def method_names():
    """The method files, from README.md's method table (as the site reads them), and their arXiv pages."""
    rows = re.findall(r"^\|\s*`(\w+)\.py`.*\]\((https://arxiv\.org/[^)]+)\)", (ROOT / "README.md").read_text(),
                      flags=re.M)
    assert len(rows) >= 2, "README.md's method table lists fewer than two methods"
    return dict(rows)


class Page(HTMLParser):
    """Parses a page and checks that tags balance; records the text of every element with data-line (the line
    number gutter left out), its reference links, ids, and on compare pages which lines and which `missing`
    markers sit in which (role, method) cell."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids = [], [], Counter()
        self.lines = defaultdict(list)      # line number -> [text of each element carrying it]
        self.refs = defaultdict(list)       # line number -> [(link text, href)]
        self.cells = defaultdict(list)      # (role, method) -> [line numbers]
        self.missing, self.roles, self.links, self.formulas = set(), [], [], []
        self.open_line = self.open_ref = None
        self.role = self.method = None
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed at the end: {[t for t, *_ in self.stack]}")

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] += 1
        if tag in ("a", "img", "link") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))
        if tag in VOID:
            return
        if tag == "svg" and "math" in attrs.get("class", "").split():
            self.formulas.append(attrs.get("aria-label", ""))
        kind = None
        if "data-line" in attrs and tag != "svg":
            kind = "line"
            self.open_line = int(attrs["data-line"])
            self.lines[self.open_line].append("")
            if self.role:
                self.cells[(self.role, self.method)].append(self.open_line)
        elif tag == "span" and attrs.get("class") == "ln":
            kind = "gutter"
        elif tag == "a" and "ref" in attrs.get("class", "").split():
            kind = "ref"
            self.open_ref = [attrs.get("href"), ""]
        elif tag == "section" and attrs.get("id", "").startswith("role-"):
            kind = "role"
            self.role = attrs["id"][len("role-"):]
            self.roles.append(self.role)
        elif tag == "div" and "data-method" in attrs and "side" in attrs.get("class", ""):
            self.method = attrs["data-method"]
        elif "missing" in attrs.get("class", "").split() and "data-role" in attrs:
            self.missing.add((attrs["data-role"], attrs["data-method"]))
        elif tag in ("style", "title") and self.stack and self.stack[-1][0] == "svg":
            kind = "hidden" if tag == "style" else None
        self.stack.append((tag, kind))

    def handle_startendtag(self, tag, attrs):   # <path .../> in SVG: opens and closes
        if "id" in dict(attrs):
            self.ids[dict(attrs)["id"]] += 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"line {self.getpos()[0]}: </{tag}> closes {self.stack[-1][0] if self.stack else None}")
            return
        _, kind = self.stack.pop()
        if kind == "line":
            self.open_line = None
        elif kind == "ref" and self.open_line is not None:
            self.refs[self.open_line].append((self.open_ref[1], self.open_ref[0]))
        elif kind == "role":
            self.role = None

    def handle_data(self, data):
        if any(kind in ("gutter", "hidden") for _, kind in self.stack):
            return
        if self.open_line is not None:
            self.lines[self.open_line][-1] += data
        if self.open_ref is not None and any(kind == "ref" for _, kind in self.stack):
            self.open_ref[1] += data


def prose_form(s):
    """A source line as prose shows it: no comment mark or docstring quotes, no `code` or *emphasis* marks,
    whitespace collapsed."""
    s = s.strip()
    s = s[1:] if s.startswith("#") else s
    for mark in ('"""', "'''", "`", "*"):
        s = s.replace(mark, "")
    return " ".join(s.split())


def roles_by_name(tree):
    """{role: [first line of each definition]} found by name, independently of site.py: the module docstring,
    the top-level Config and sample, and the skeleton's methods of the model class (the top-level class that has
    the most of them: RVM's core classes have a `forward` too)."""
    found = defaultdict(list)
    if ast.get_docstring(tree):
        found["docstring"].append(tree.body[0].lineno)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in ("Config", "sample"):
            found[node.name].append(node.lineno)
    stages = [[m for m in c.body if isinstance(m, ast.FunctionDef) and m.name in STAGES]
              for c in tree.body if isinstance(c, ast.ClassDef)]
    for m in max(stages, key=len, default=[]):
        found[m.name].append(m.lineno)
    return found


@pytest.fixture(scope="module")
def site():
    """site/ built by site.py (as `make site`), and the files it shows."""
    result = subprocess.run([sys.executable, "site.py", "--out", str(SITE)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return method_names()


@functools.lru_cache(maxsize=None)   # the site is built once per run: parse each page once
def parse(path):
    page = Page(path.read_text())
    assert not page.errors, f"{path.name}: {page.errors[:5]}"
    return page


def test_all_pages_are_built_and_valid_html(site):
    names = list(site)
    expected = {"index.html", "vit.html"} | {f"{m}.html" for m in names}
    expected |= {f"compare-{a}-{b}.html" for i, a in enumerate(names) for b in names[i + 1:]}
    assert expected <= {p.name for p in SITE.glob("*.html")}
    for name in sorted(expected):
        page = parse(SITE / name)
        doubled = [i for i, n in page.ids.items() if n > 1]
        assert not doubled, f"{name}: ids used more than once: {doubled[:5]}"


def test_every_link_inside_the_site_resolves(site):
    """Links between pages (the index's role table into every method page, nav, compare pages) and to anchors in
    them, pictures and the stylesheet: each file exists, each #anchor is an id there."""
    pages = {p.name: parse(p) for p in SITE.glob("*.html")}
    checked = 0
    for name, page in pages.items():
        for link in page.links:
            if link.startswith(("http://", "https://")):
                continue
            target, _, anchor = link.partition("#")
            target = target or name
            assert (SITE / target).exists(), f"{name}: {link} points to no file"
            if anchor:
                assert pages[target].ids[anchor] == 1, f"{name}: {link} points to no anchor"
            checked += 1
    index = pages["index.html"]
    for m in site:
        assert any(link.startswith(f"{m}.html#") for link in index.links), f"the index links into no part of {m}"
    assert checked > 100


def test_page_checker_catches_unbalanced_tags():
    assert Page("<div><p>text</div>").errors
    assert Page("<div><span>text</span>").errors
    assert not Page("<div><p>a<br>b</p><svg><path d='M0'/></svg></div>").errors


def test_every_line_of_each_file_appears_once_with_its_number(site):
    for name in list(site) + ["vit"]:
        lines = (ROOT / f"{name}.py").read_text().splitlines()
        page = parse(SITE / f"{name}.html")
        assert sorted(page.lines) == list(range(1, len(lines) + 1)), f"{name}.html: lines missing or extra"
        for n, texts in page.lines.items():
            assert len(texts) == 1, f"{name}.html: line {n} appears {len(texts)} times"
            shown, source = texts[0], lines[n - 1]
            # code lines verbatim; prose lines (comments, docstrings, typeset formulas) as prose reads them
            assert shown == source or prose_form(shown) == prose_form(source), \
                f"{name}.html line {n}: shows {shown!r}, the file has {source!r}"


def test_every_paper_reference_is_a_link_to_the_paper(site):
    for name, url in site.items():
        lines = (ROOT / f"{name}.py").read_text().splitlines()
        page = parse(SITE / f"{name}.html")
        total = 0
        for n, line in enumerate(lines, 1):
            want = len(REF.findall(line))
            links = [(text, href) for text, href in page.refs.get(n, []) if REF.match(text)]
            assert len(links) == want, f"{name}.html line {n}: {want} references, {len(links)} links: {line!r}"
            assert all(href == url for _, href in links), f"{name}.html line {n}: links {links}, paper {url}"
            total += want
        assert total > 0, f"{name}.py cites no Sec./Eq./Table/Fig.: the test would not test anything"


def test_the_loss_is_typeset(site):
    """Each method page sets its docstring's loss as SVG (mathtext), each formula one the file's docstring has."""
    for name in site:
        source = (ROOT / f"{name}.py").read_text()
        page = parse(SITE / f"{name}.html")
        assert page.formulas, f"{name}.html: no typeset formula"
        docstring = ast.get_docstring(ast.parse(source), clean=False)
        for formula in page.formulas:
            assert formula and formula in docstring, f"{name}.html: {formula!r} is not in {name}.py's docstring"


def test_every_role_on_every_compare_page_in_skeleton_order(site):
    names = list(site)
    found = {m: roles_by_name(ast.parse((ROOT / f"{m}.py").read_text())) for m in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            page = parse(SITE / f"compare-{a}-{b}.html")
            assert page.roles == SKELETON, f"compare-{a}-{b}.html: roles {page.roles}"
            for m in (a, b):
                for role in SKELETON:
                    shown = page.cells.get((role, m), [])
                    assert bool(shown) != ((role, m) in page.missing), \
                        f"compare-{a}-{b}.html: {m}'s {role} is neither shown nor marked missing (or both)"
                    for first in found[m].get(role, []):
                        assert first in shown, f"compare-{a}-{b}.html: {m}.py's {role} (line {first}) not shown"


def test_a_role_missing_from_a_file_is_shown_as_missing(tmp_path):
    """A copy of the project in which rvm.py has no `decode`: the compare page says so instead of skipping it."""
    for f in ["README.md", "vit.py"] + [f"{m}.py" for m in method_names()]:
        shutil.copy(ROOT / f, tmp_path / f)
    source = (ROOT / "rvm.py").read_text()
    lines = source.splitlines(keepends=True)
    decode = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "decode")
    (tmp_path / "rvm.py").write_text("".join(lines[:decode.lineno - 1] + lines[decode.end_lineno:]))
    builder = load_site_module()
    page = Page(builder.Site(tmp_path).compare_page("rvm", "siammae"))
    assert not page.errors
    assert page.roles == SKELETON
    assert ("decode", "rvm") in page.missing and not page.cells.get(("decode", "rvm"))
    assert ("decode", "siammae") not in page.missing and page.cells[("decode", "siammae")]


def test_a_folder_without_the_project_is_one_line_error(tmp_path):
    (tmp_path / "README.md").write_text("# no method table here\n")
    result = subprocess.run([sys.executable, str(ROOT / "site.py"), "--root", str(tmp_path), "--out",
                             str(tmp_path / "site")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: README.md has no method table"), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "site").exists()


def test_formula_to_mathtext():
    builder = load_site_module()
    assert builder.to_mathtext("L = 1/K sum_k ||X_hat_k - X_k||^2") == r"$L=1/K\ \sum_{k}\|\hat{X}_{k}-X_{k}\|^{2}$"
    assert builder.to_mathtext("a . b / tau") == r"$a\cdot b/\tau$"
    assert builder.to_mathtext("sqrt(var(x) + 1)") == r"$\sqrt{\mathrm{var}(x)+1}$"


# ----------------------------------------------------------------------------
# in a real browser


def chromium():
    """Debian's Chromium, installed here if missing (as root, with the network), else the test is skipped."""
    path = shutil.which("chromium")
    if path:
        return path
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("no chromium, and no apt-get as root to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"{' '.join(cmd)} took over 15 minutes")
        if result.returncode:
            pytest.skip(f"cannot install chromium: {' '.join(cmd)}: {result.stderr.strip()[-300:]}")
    return shutil.which("chromium") or pytest.skip("apt-get installed no chromium")


def screenshot(browser, page, out, size, tmp_path):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={size[0]},{size[1]}", f"--screenshot={out}",
           (SITE / page).as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and out.exists(), result.stderr[-2000:]
    import matplotlib.image
    return (matplotlib.image.imread(out)[..., :3] * 255).round().astype(np.uint8)   # (H, W, 3)


def colours(img):
    """How many distinct colours an image has (packed into one int each: np.unique over rows is slow)."""
    c = img.astype(np.int32)
    return len(np.unique(c[..., 0] << 16 | c[..., 1] << 8 | c[..., 2]))


def share(img, rgb, tol=3):
    """The share of pixels within tol of one colour."""
    return float((np.abs(img.astype(int) - rgb).max(-1) <= tol).mean())


def test_screenshots_in_chromium_are_not_blank(site, tmp_path):
    """One method page and one compare page (and the method page at a phone's width), saved in site/screenshots/.
    Not blank: many colours, the prose column's background on the left and highlighted code on the right; on the
    compare page, code and marked lines in both halves."""
    browser = chromium()
    shots = SITE / "screenshots"
    shots.mkdir(exist_ok=True)
    first, second = list(site)[:2]
    prose_bg, marked = (248, 247, 242), (255, 246, 214)   # site.py's CSS
    tokens = [(0, 128, 0), (0, 0, 255), (61, 123, 123), (186, 33, 33)]   # Pygments: keyword, name, comment, string

    def code(region):
        return sum(share(region, c) for c in tokens)

    img = screenshot(browser, f"{first}.html", shots / f"{first}.png", (1280, 2400), tmp_path)
    assert colours(img) > 200, "the method page looks blank"
    left, right = img[1200:, :400], img[1200:, 560:]   # below the module docstring, which reads full width
    assert share(left, prose_bg) > 0.3, "no prose column on the left"
    assert code(right) > 0.0008 and share(right, prose_bg) < 0.1, "no highlighted code on the right"
    img = screenshot(browser, f"compare-{first}-{second}.html", shots / f"compare-{first}-{second}.png",
                     (1280, 2400), tmp_path)
    assert colours(img) > 200, "the compare page looks blank"
    for half in (img[:, :640], img[:, 640:]):
        assert code(half) > 0.0008, "a side of the compare page has no highlighted code"
        assert share(half, marked) > 0.01, "a side of the compare page has no marked lines"
    img = screenshot(browser, f"{first}.html", shots / f"{first}-phone.png", (390, 1600), tmp_path)
    assert colours(img) > 100, "the method page at a phone's width looks blank"
