"""Build the reading site (issue 42): the four method files as pages to read, and any two side by side.

    python site.py              # writes site/ (or: make site); open site/index.html in a browser

Everything is generated from the source at build time, so the site follows the code:
- a page per method (site/rvm.html, ...) and one for vit.py: comments and docstrings as prose on the left, the
  code on the right, highlighted by Pygments, with the file's line numbers; `Sec. 3.2`, `Eq. 3`, `Table 3b`,
  `Fig. 6` link to the paper's arXiv page (README.md's method table); the loss formula of the module docstring
  typeset by matplotlib's mathtext as inline SVG;
- a page per pair of methods (site/compare-rvm-siammae.html, ...): the skeleton's roles (DESIGN.md) as rows, found
  by name with `ast`, the two files' code for each role side by side, the lines that differ marked, and each
  role's note taken from the code's own docstring or comment;
- site/index.html: the methods, the data flow, the role table, vit.py's pieces and the README's pictures.
Plain HTML and CSS, no JavaScript, no network. Every page is standalone but for site/style.css and the pictures.

Named site.py as the issue asks; Python imports its own `site` module at start-up, before this folder is on
sys.path, so running this file is safe, but import it by path (tests/test_site.py does), not as `import site`.
"""
import argparse
import ast
import difflib
import html
import io
import itertools
import re
import shutil
import sys
import tokenize
from pathlib import Path

from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES

ROOT = Path(__file__).resolve().parent

# The skeleton every method file keeps (DESIGN.md, "The contract every method file keeps"), in file order.
# "helpers" is every definition that is no other role (top-level functions and classes beside Config, sample and
# the model class, and the model's own extra methods); "__init__" is the model class's header and constructor.
STAGES = ["check_batch", "encode", "decode", "loss", "predict", "forward", "features", "reconstruct"]
ROLES = ["docstring", "Config", "sample", "helpers", "__init__"] + STAGES

# A reference to the paper: Sec. 3.2, Eq. 3-4, Table 2a/2b, Fig. 6, App. A. A keyword that ends a line is linked
# too: its number is on the next line ("(Eq.\n5-7"), and a line is the unit of the code column.
NUM = r"\d+(?:\.\d+)*[a-z]?"    # 3, 3.2, 3b
REF = re.compile(rf"\b(?:Sec|Section|Eq|Table|Fig|App)s?\b\.?(?:[ \t]+(?:{NUM}|[A-Z]\b)(?:[ \t]*[-/,][ \t]*{NUM})*"
                 r"|(?=[ \t]*$))")
URL = re.compile(r"https?://[^\s)>\]&]+[^\s)>\]&.,;:]")   # in escaped text: &quot; ends a URL


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------
# reading the files: papers from README.md, roles and prose lines from the source


def read_papers(readme):
    """README.md's method table -> {"rvm": ("RVM (Zoran et al. 2025)", "one line", "https://arxiv.org/abs/..."), ...},
    in the table's order. A row is `| `rvm.py` | method | one line | [title](url) |`."""
    papers = {}
    for line in readme.splitlines():
        m = re.match(r"\|\s*`(\w+)\.py`\s*\|([^|]*)\|([^|]*)\|.*\]\((https?://arxiv\.org/[^)]+)\)", line)
        if m:
            papers[m[1]] = (m[2].strip(), m[3].strip(), m[4])
    return papers


def node_start(node):
    """The first line of a definition, its decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def docstring_node(node):
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def model_class(tree):
    """The model class: the top-level class with the most skeleton methods (the last one on a tie), or None."""
    best, score = None, 0
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            n = sum(isinstance(m, ast.FunctionDef) and m.name in STAGES for m in node.body)
            if n and n >= score:
                best, score = node, n
    return best


def find_roles(tree):
    """{role: [(qualified name, first line, last line, node), ...]} for every role in ROLES, [] where missing."""
    roles = {r: [] for r in ROLES}
    doc = docstring_node(tree)
    if doc:
        roles["docstring"].append(("module docstring", doc.lineno, doc.end_lineno, doc))
    model = model_class(tree)
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node is model:
            continue
        role = node.name if node.name in ("Config", "sample") else "helpers"
        roles[role].append((node.name, node_start(node), node.end_lineno, node))
    if model:
        methods = [m for m in model.body if isinstance(m, ast.FunctionDef)]
        init = next((m for m in methods if m.name == "__init__"), None)
        header_end = init.end_lineno if init else (docstring_node(model) or model).lineno
        roles["__init__"].append((f"{model.name}.__init__" if init else model.name, node_start(model), header_end,
                                  init or model))
        for m in methods:
            if m is not init:
                role = m.name if m.name in STAGES else "helpers"
                roles[role].append((f"{model.name}.{m.name}", node_start(m), m.end_lineno, m))
    for segments in roles.values():
        segments.sort(key=lambda s: s[1])
    return roles


def definitions(tree):
    """Every top-level definition and every method of a top-level class: [(qualified name, node), ...]."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.append((node.name, node))
            if isinstance(node, ast.ClassDef):
                out += [(f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, ast.FunctionDef)]
    return out


def prose_lines(source, lines, tree):
    """{line number: text} of the lines read as prose: docstrings (quotes removed, dedented, relative indentation
    kept) and full-line comments ("# " removed). Kept as code: rules (`# ----`), comments that continue a comment
    at the end of the line above (`#` then 2+ spaces), and docstrings that share a line with code."""
    prose = {}
    for node in [tree] + [n for _, n in definitions(tree)]:
        doc = docstring_node(node)
        if not doc:
            continue
        first, last = lines[doc.lineno - 1], lines[doc.end_lineno - 1]
        m_open = re.match(r'\s*[rRuU]?("""|\'\'\')', first)
        if not m_open or not last.rstrip().endswith(m_open[1]) or (doc.lineno == doc.end_lineno and
                                                                     len(first.strip()) < 6):
            continue
        raw = lines[doc.lineno - 1:doc.end_lineno]
        raw[-1] = raw[-1].rstrip()[:-3]
        raw[0] = raw[0][m_open.end():]
        indent = min((len(s) - len(s.lstrip()) for s in raw[1:] if s.strip()), default=0)
        for i, s in enumerate(raw):
            prose[doc.lineno + i] = (s.strip() if i == 0 else s[indent:].rstrip())
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not tok.line[:tok.start[1]].strip():
            text = tok.string[1:]
            if re.search(r"\w", text) and not text.startswith("  ") and not text.startswith("!"):
                prose[tok.start[0]] = text[1:] if text.startswith(" ") else text
    return prose


def diff_keys(source, lines):
    """What the compare pages compare of each line: the line stripped, less its trailing comment (`dim: int = 64
    # paper 384` equals `dim: int = 64  # official 512`: the same code, each with its own reason)."""
    keys = [s.strip() for s in lines]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.line[:tok.start[1]].strip():
            row, col = tok.start
            keys[row - 1] = lines[row - 1][:col].strip()
    return keys


def first_sentence(text, limit=170):
    """The first sentence of a docstring's first paragraph (or of a comment), at most `limit` characters."""
    para = " ".join(text.strip().split("\n\n")[0].split())
    m = re.match(r"(.+?\.)(\s+[A-Z(]|$)", para)
    s = m[1] if m and len(m[1]) > 25 else para
    return s if len(s) <= limit else s[:limit - 1].rsplit(" ", 1)[0] + " ..."


def note(node, lines, prose):
    """A definition's one-line note, from the code: its docstring, else the comment right above it, else the
    first comment inside it (said so: it may be about one line only), else "no docstring or comment"."""
    doc = docstring_node(node)
    if doc:
        return first_sentence(doc.value.value)
    above = []
    n = node_start(node) - 1
    while n >= 1 and n in prose and lines[n - 1].lstrip().startswith("#"):
        above.insert(0, prose[n])
        n -= 1
    if above:
        return first_sentence(" ".join(above))
    inside = [prose[n] for n in range(node.lineno, node.end_lineno + 1) if n in prose]
    return "first comment inside: " + first_sentence(inside[0]) if inside else "no docstring or comment"


def config_fields(node):
    return [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]


# ----------------------------------------------------------------------------
# HTML pieces: highlighted lines, prose with links, formulas


def esc(s):
    return html.escape(s, quote=True)


def link_refs(escaped, url):
    """Links Sec./Eq./Table/Fig./App. references and bare URLs in already escaped text."""
    def ref(m):
        return f'<a class="ref" href="{esc(url)}" title="the paper on arXiv">{m[0]}</a>' if url else m[0]
    parts = URL.split(escaped)
    urls = URL.findall(escaped)
    out = [REF.sub(ref, parts[0])]
    for u, rest in zip(urls, parts[1:]):
        out += [f'<a href="{u}">{u}</a>', REF.sub(ref, rest)]
    return "".join(out)


def inline(text, url):
    """One line of prose: escaped, `code` and *emphasis* marked, references linked."""
    s = link_refs(esc(text), url)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"(?<![\w*])\*(\w[^*<>]*?)\*(?![\w*])", r"<em>\1</em>", s)


def line_class(line):
    """A code line's CSS class: "l", or "l rule" for a comment that is only a rule (`# -----`)."""
    return "l rule" if re.fullmatch(r"\s*#\s*[-=#*]{8,}\s*", line) else "l"


def css_class(ttype):
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def highlight(source, url):
    """The file as a list of HTML lines, one per source line, highlighted by Pygments' Python lexer; references
    in comments and strings linked. Tokens are split at newlines so every line stands on its own."""
    out = [[]]
    for ttype, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens(source):
        cls = css_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                out.append([])
            if part:
                text = esc(part)
                if cls.startswith(("c", "s")):
                    text = link_refs(text, url)
                out[-1].append(f'<span class="{cls}">{text}</span>' if cls else text)
    return ["".join(x) for x in out]


GREEK = set("alpha beta gamma delta epsilon eta theta lambda mu nu pi rho sigma tau phi chi psi omega "
            "Gamma Delta Theta Lambda Pi Sigma Phi Psi Omega".split())
FUNCS = {"log": r"\log", "exp": r"\exp", "max": r"\max", "min": r"\min", "sum": r"\sum"}
MATH_TOKEN = re.compile(r"\s+|\|\||!=|<=|>=|->|\d+(?:\.\d+)?(?:e-?\d+)?|[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*|.")


def to_mathtext(formula):
    """A docstring formula in plain text (`L = 1/K sum_k ||X_hat_k - X_k||^2`) -> mathtext (`$L=1/K\\sum_{k}...$`).
    Names of more than one letter are set upright, Greek names as letters, `sqrt(...)` as a root, `_hat` as a hat."""
    def word(w):
        if w in GREEK:
            return "\\" + w
        if w in FUNCS:
            return FUNCS[w]
        if w == "in":
            return r"\in"
        return w if len(w) == 1 or re.fullmatch(r"[a-z]\d+|\d+", w) else rf"\mathrm{{{w}}}"

    out, parens, wrap, prev_word = [], [], False, False   # parens: what each open "(" closes with
    toks = MATH_TOKEN.findall(formula) + [""]
    for t, nxt in zip(toks, toks[1:]):
        if t.isspace():   # spaces between two names are kept (`sum_{anchors a in ...}`), others dropped
            if prev_word and re.match(r"\w", nxt):
                out.append(r"\ ")
            continue
        if out and out[-1] == r"\sqrt{" and t == "(":
            continue   # sqrt's own parenthesis: already opened as {
        if re.match(r"[A-Za-z]", t):
            base, *subs = t.split("_")
            if base == "sqrt" and not subs and nxt == "(":
                out.append(r"\sqrt{")
                parens.append("}")
                prev_word = False
                continue
            t = rf"\hat{{{word(base)}}}" if "hat" in subs else word(base)
            subs = [s for s in subs if s != "hat"]
            if subs:
                t += "_{" + ",".join(word(x) for x in subs) + "}"
        elif t == "(":
            parens.append(")")
        elif t == ")":
            t = parens.pop() if parens else ")"
        else:
            t = {"||": r"\|", "!=": r"\neq", "<=": r"\leq", ">=": r"\geq", "->": r"\rightarrow", "*": r"\cdot",
                 ".": r"\cdot", "%": r"\%", "$": r"\$", "&": r"\&", "#": r"\#", "~": r"\sim"}.get(t, t)
        if re.search(r"\\[A-Za-z]+$", t):
            t += " "   # `\cdot a`, not the unknown `\cdota`
        if wrap and t not in ("{",):
            t = "{" + t + "}"
        wrap = t in ("_", "^")
        prev_word = bool(re.match(r"\w|\\mathrm|\\hat", t)) or t.strip().lstrip("\\") in GREEK
        out.append(t)
    return "$" + "".join(out).strip() + "$"


PLAIN_WORDS = re.compile(r"\b[a-z]{2,}\s+[a-z]{2,}\s+[a-z]{2,}\b")
FORMULA_REF = re.compile(r"\((?:Sec|Eq|Table|Fig)[^()]*\)")


class Typesetter:
    """Formulas to inline SVG with matplotlib's mathtext (no JavaScript, no fonts to fetch: glyphs are paths)."""

    def __init__(self):
        import matplotlib
        matplotlib.use("Agg")
        matplotlib.rcParams.update({"mathtext.fontset": "cm", "svg.hashsalt": "site", "svg.fonttype": "path"})
        from matplotlib import mathtext
        from matplotlib.font_manager import FontProperties
        self.mathtext, self.prop, self.count = mathtext, FontProperties(size=15), 0

    def svg(self, formula):
        """SVG markup of one formula, or None where mathtext cannot set it (the caller shows the text)."""
        buf = io.BytesIO()
        try:
            self.mathtext.math_to_image(to_mathtext(formula), buf, prop=self.prop, format="svg")
        except ValueError:   # what mathtext's parser cannot read
            return None
        s = buf.getvalue().decode()
        s = s[s.index("<svg"):]
        s = re.sub(r"<metadata>.*?</metadata>|<style[^>]*>.*?</style>", "", s, flags=re.S)
        self.count += 1   # glyph ids repeat across formulas: make each formula's ids its own
        s = re.sub(r'(id="|href="#|url\(#)([^")]+)', rf"\g<1>f{self.count}-\2", s)
        return s.replace("<svg ", f'<svg class="math" role="img" aria-label="{esc(formula)}" ', 1).replace(
            ">", f"><title>{esc(formula)}</title>", 1)

    def line(self, text, url):
        """A formula line: the math typeset, (Eq. N) references and lines that read as sentences as text."""
        if "=" not in text or PLAIN_WORDS.search(FORMULA_REF.sub("", text)):
            return None
        pieces, pos = [], 0
        for m in itertools.chain(FORMULA_REF.finditer(text), [None]):
            math = text[pos:m.start() if m else len(text)]
            core = math.strip(" ,")
            if core:   # the separators around a formula stay text, so the line reads as in the file
                lead, trail = math[:math.index(core)], math[math.index(core) + len(core):]
                svg = self.svg(core)
                if svg is None:
                    return None
                pieces.append(esc(lead) + svg + esc(trail))
            if m:
                pieces.append(inline(m[0], url))
                pos = m.end()
        return "".join(pieces)


# ----------------------------------------------------------------------------
# pages


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<nav>{nav}</nav>
<main>
{body}
</main>
</body>
</html>
"""

CSS = """
body { margin: 0; font: 18px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a; background: #fff; }
nav { padding: .5em 1em; background: #23313f; font-size: 15px; line-height: 1.9; }
nav a { color: #fff; margin-right: 1em; text-decoration: none; white-space: nowrap; }
nav a.here { border-bottom: 2px solid #ffd166; }
main { max-width: 1800px; margin: 0 auto; }
h1 { font-size: 1.6em; margin: .6em 16px .2em; }
h2 { font-size: 1.25em; margin: 1.2em 16px .4em; }
p.lead, .index p, .index ul, .index table, .index figure, .index .flow { margin-left: 16px; margin-right: 16px; }
a { color: #0b5cad; }
a.ref { color: #0b5cad; text-decoration: underline dotted; }
code { font: .88em ui-monospace, "DejaVu Sans Mono", Menlo, monospace; background: #eef1f4; padding: 0 .2em; }
.sec { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 2fr); border-top: 1px solid #e3e3e3; }
.prose { padding: .4em 1.2em .6em 16px; background: #f8f7f2; font-size: 17px; }
.sec.intro { grid-template-columns: minmax(0, 1fr); }
.sec.intro .prose { padding-right: 16px; }
.sec.intro .prose > * { max-width: 62em; }
.prose h3 { font-size: 1em; margin: .3em 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.prose h3 a { color: #7a2e00; text-decoration: none; }
.prose p { margin: .4em 0; }
.prose ul { margin: .3em 0; padding-left: 1.3em; }
.prose .lines, .side .lines { color: #777; font-size: 13px; font-family: ui-monospace, monospace; }
.prose .pre { display: block; white-space: pre-wrap; font: 15px/1.45 ui-monospace, "DejaVu Sans Mono", monospace;
  margin: .3em 0; padding: .2em .5em; background: #fff; border-left: 3px solid #d9c48a; overflow-wrap: anywhere; }
.prose .pre .pl { display: block; }
.prose .pre .pl.tex { font: 18px/1.5 system-ui, sans-serif; }
svg.math { vertical-align: middle; }
.prose .pre:has(svg) { overflow-x: auto; }
.prose .pre .pl.tex { white-space: nowrap; }
.code { padding: .4em 0; font: 14px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; min-width: 0; }
.l { display: block; position: relative; padding-left: 6.2em; text-indent: -2em; padding-right: .6em;
  white-space: pre-wrap; overflow-wrap: anywhere; min-height: 1.45em; }
.ln { position: absolute; left: 0; width: 3.3em; text-indent: 0; text-align: right; color: #999; user-select: none; }
.l:target { background: #fff7cf; }
.l.rule { white-space: pre; overflow: hidden; }   /* a `# ----` rule is cut at the column's edge, not wrapped */
.l.d { background: #fff6d6; box-shadow: inset 4px 0 #e0a800; }
.role { border-top: 2px solid #23313f; margin-top: 1em; }
.role h2 { margin-top: .5em; font-family: ui-monospace, monospace; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0 10px; }
.side { min-width: 0; }
.side.line { font: 14px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
.side h3 { font-size: .95em; margin: .6em 0 .2em 16px; font-family: ui-monospace, monospace; }
.note { margin: .3em 16px .5em; }
.missing { margin: .5em 16px; padding: .5em 1em; background: #fde8e8; color: #8a1c1c; font-weight: 600; }
.legend .d { background: #fff6d6; box-shadow: inset 4px 0 #e0a800; padding: 0 .4em; }
table { border-collapse: collapse; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0ea; }
.flow { display: flex; flex-wrap: wrap; align-items: center; gap: .4em; margin: .6em 16px; }
.flow .box { border: 2px solid #23313f; border-radius: 6px; padding: .3em .7em; background: #f8f7f2; }
.flow .arrow { font-size: 1.4em; color: #555; }
figure { margin: 1em 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; margin-top: .5em; }
figcaption ul { margin: .2em 0; }
@media (max-width: 820px) {
  body { font-size: 16px; }
  .sec, .pair { grid-template-columns: minmax(0, 1fr); }
  .code, .side.line { font-size: 13px; }
  .pair > :nth-child(odd) { order: 1; }    /* one column: all of the first method's cells, then the second's */
  .pair > :nth-child(even) { order: 2; }
  .l { padding-left: 4.6em; text-indent: -1.5em; }
  .ln { width: 2.6em; }
}
"""


class Site:
    """What every page needs: the method files, their papers and roles, and the pieces of the navigation."""

    def __init__(self, root):
        self.root = Path(root)
        readme_path = self.root / "README.md"
        if not readme_path.exists():
            fail(f"{readme_path} not found: the method table (file, method, one line, paper) is read from it")
        self.readme = readme_path.read_text()
        self.papers = read_papers(self.readme)
        if not self.papers:
            fail("README.md has no method table with rows like | `rvm.py` | ... | [title](https://arxiv.org/...) |")
        self.files = {}
        for name in list(self.papers) + ["vit"]:
            path = self.root / f"{name}.py"
            if not path.exists():
                fail(f"{path} not found (README.md's method table names it)")
            source = path.read_text()
            try:
                tree = ast.parse(source)
            except SyntaxError as e:
                fail(f"{path.name}:{e.lineno}: cannot parse: {e.msg}")
            self.files[name] = (source, source.splitlines(), tree)
        self.methods = list(self.papers)
        # each file read once: its highlighted lines, its prose lines, its roles
        self.code = {n: highlight(src, self.url(n)) for n, (src, _, _) in self.files.items()}
        self.prose = {n: prose_lines(*f) for n, f in self.files.items()}
        self.roles = {n: find_roles(f[2]) for n, f in self.files.items()}
        self.diff_keys = {n: diff_keys(src, lines) for n, (src, lines, _) in self.files.items()}
        self.typeset = Typesetter()

    def url(self, name):
        return self.papers[name][2] if name in self.papers else None

    def nav(self, here):
        pages = [("index", "index")] + [(m, f"{m}.py") for m in self.methods] + [("vit", "vit.py")]
        pages += [(self.compare_name(a, b), f"{a} | {b}") for a, b in itertools.combinations(self.methods, 2)]
        links = []
        for page, label in pages:
            mark = ' class="here"' if page == here else ""
            links.append(f'<a href="{page}.html"{mark}>{esc(label)}</a>')
        return "\n".join(links)

    def page(self, name, title, body):
        return PAGE.format(title=esc(title), nav=self.nav(name), body=body)

    # --- a file as a page to read ---

    def prose_html(self, items, url, method_doc):
        """Prose lines [(n, text)] -> paragraphs, lists and indented blocks; each source line its own span with
        data-line = its line number. In a method's module docstring the indented block after the paragraph that
        starts with "Loss" is the loss (DESIGN.md: "the loss as a formula"): typeset where a line reads as one."""
        out, block = [], None   # block: the open element, "p" | "ul" | "pre"
        loss = False            # in the "Loss ..." paragraph or the block after it

        def open_(kind):
            nonlocal block
            if block != kind:
                close()
                out.append({"p": "<p>", "ul": "<ul><li>", "pre": '<span class="pre">'}[kind])
                block = kind

        def close():
            nonlocal block
            if block:
                out.append({"p": "</p>", "ul": "</li></ul>", "pre": "</span>"}[block])
            block = None

        for n, text in items:
            span = f'<span class="pl" id="L{n}" data-line="{n}">'
            if not text.strip():
                close()
                out.append(f'{span}</span>')
            elif text.startswith("  "):
                open_("pre")
                tex = self.typeset.line(text.strip(), url) if method_doc and loss else None
                if tex:
                    out.append(f'<span class="pl tex" id="L{n}" data-line="{n}">{tex}</span>')
                else:
                    out.append(f"{span}{inline(text, url)}</span>")
            elif re.match(r"[-*] ", text):
                if block == "ul":
                    out.append("</li><li>")
                open_("ul")
                out.append(f"{span}{inline(text[2:], url)}</span>\n")
            else:
                if block == "pre":
                    close()
                if block is None:
                    open_("p")
                    loss = text.startswith("Loss")
                out.append(f"{span}{inline(text, url)}</span>\n")
        close()
        return "".join(out)

    def file_page(self, name):
        """The file in reading order, in sections: prose (its comments and docstrings) beside its code. A
        section starts at every definition (with the comment right above it) and wherever prose follows code."""
        source, lines, tree = self.files[name]
        url = self.url(name)
        prose, code = self.prose[name], self.code[name]
        starts, docs = {}, {}
        for qual, node in definitions(tree):
            start = node_start(node)
            while start - 1 in prose and lines[start - 2].lstrip().startswith("#"):
                start -= 1   # the comment right above a definition is its prose
            starts[start] = (qual, node)
            doc = docstring_node(node)
            if doc:
                docs[qual] = range(doc.lineno, doc.end_lineno + 1)
        sections, current = [], None
        module_doc = docstring_node(tree)
        module_doc = range(module_doc.lineno, module_doc.end_lineno + 1) if module_doc else range(0)
        for n in range(1, len(lines) + 1):   # every line of the file once, in a prose or a code column
            is_prose, prev_code = n in prose, current and current["code"] and n - 1 not in prose
            own_doc = current and current["def"] and n in docs.get(current["def"][0], ())
            if current is None or n in starts or (is_prose and prev_code and not own_doc):
                current = {"def": starts.get(n), "prose": [], "code": []}
                sections.append(current)
            (current["prose"] if is_prose else current["code"]).append(n)
        body = [f"<h1>{esc(name)}.py</h1>"]
        if name in self.papers:
            title, oneline, _ = self.papers[name]
            body.append(f'<p class="lead">{esc(title)}: {inline(oneline, None)}. Paper: <a href="{url}">{url}</a>. '
                        f'Side by side with: ' + ", ".join(
                            f'<a href="{self.compare_name(name, o)}.html">{o}</a>' for o in self.methods if o != name)
                        + "</p>")
        for sec in sections:
            sid = f' id="{esc(sec["def"][0])}"' if sec["def"] else ""
            head = ""
            if sec["def"]:
                qual, node = sec["def"]
                head = (f'<h3><a href="#{esc(qual)}">{esc(qual)}</a> '
                        f'<span class="lines">L{node_start(node)}-{node.end_lineno}</span></h3>')
            items = [(n, prose[n]) for n in sec["prose"]]
            doc = bool(items) and items[0][0] in module_doc
            left = self.prose_html(items, url, method_doc=doc and name in self.papers)
            right = "".join(f'<span class="{line_class(lines[n - 1])}" id="L{n}" data-line="{n}"><span class="ln">{n}'
                            f"</span>{code[n - 1]}</span>" for n in sec["code"])
            kind = "sec intro" if doc else "sec"   # the module docstring reads full width: the loss needs room
            body.append(f'<section class="{kind}"{sid}><div class="prose">{head}{left}</div>'
                        f'<div class="code">{right}</div></section>')
        return self.page(name, f"{name}.py", "\n".join(body))

    # --- two methods, role by role ---

    def compare_name(self, a, b):
        """One page per pair, named in the README table's order: compare-rvm-siammae, never compare-siammae-rvm."""
        a, b = sorted((a, b), key=self.methods.index)
        return f"compare-{a}-{b}"

    def role_code(self, name, role):
        """(segments, their line numbers, what the diff compares of each line) of one role in one file."""
        segments = self.roles[name][role]
        numbers = [n for _, first, last, _ in segments for n in range(first, last + 1)]
        return segments, numbers, [self.diff_keys[name][n - 1] for n in numbers]

    def role_note(self, name, role, other):
        """The role's note in this file, from its own docstrings and comments (Config: the fields only it has)."""
        lines, prose, segments = self.files[name][1], self.prose[name], self.roles[name][role]
        if role == "docstring":
            return inline(segments[0][3].value.value.strip().split("\n")[0], None)
        if role == "Config":
            mine = config_fields(segments[0][3])
            theirs = {f for _, _, _, node in self.roles[other]["Config"] for f in config_fields(node)}
            only = [f for f in mine if f not in theirs]
            return (f"{len(mine)} fields; only here: " + ", ".join(f"<code>{esc(f)}</code>" for f in only)) \
                if only else f"{len(mine)} fields, all also in {esc(other)}.py"
        notes = []
        for qual, _, _, node in segments:
            notes.append(f"<code>{esc(qual)}</code>: {inline(note(node, lines, prose), None)}")
        return "<br>".join(notes)

    def compare_page(self, a, b):
        """The skeleton's roles as rows, a's and b's code side by side, line against line where they are equal
        (difflib), the lines that differ marked. Each role is a two-column grid of cells, one per side per row, so
        a row is as high as its longer side; on a phone, CSS `order` puts all of a's cells before b's."""
        body = [f'<h1><a href="{a}.html">{a}.py</a> | <a href="{b}.html">{b}.py</a>, role by role</h1>',
                '<p class="lead">Each row is one role of the skeleton every method file keeps, found by name; '
                'equal lines face each other, <span class="legend"><span class="d">marked</span></span> lines have '
                "no equal on the other side (their code, end-of-line comments aside). Roles: " +
                ", ".join(f'<a href="#role-{r}">{r}</a>' for r in ROLES) + ".</p>"]
        for role in ROLES:
            body.append(f'<section class="role" id="role-{role}"><h2>{role}</h2><div class="pair">')
            (sa, na, la), (sb, nb, lb) = self.role_code(a, role), self.role_code(b, role)
            for name, other, segments in ((a, b, sa), (b, a, sb)):
                body.append(self.cell(name, f'<div class="missing" data-role="{role}" data-method="{name}">missing: '
                                            f"{name}.py has no {esc(role)}</div>" if not segments else
                                      f'<p class="note" data-role="{role}" data-method="{name}"><b>{name}</b>: '
                                      f"{self.role_note(name, role, other)}</p>", "head"))
            rows = []   # (index into a's lines or None, the same for b, whether the pair differs)
            for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
                pairs = itertools.zip_longest(range(i1, i2), range(j1, j2))
                rows += [(i, j, op != "equal" and bool(sa) and bool(sb)) for i, j in pairs]
            for i, j, differ in rows:
                heads = [self.segment_head(name, segments, numbers[k]) if k is not None else ""
                         for name, segments, numbers, k in ((a, sa, na, i), (b, sb, nb, j))]
                if any(heads):   # a definition starts on one side (or both): its name and lines first
                    body.append(self.cell(a, heads[0], "head") + self.cell(b, heads[1], "head"))
                body.append(self.cell(a, self.code_line(a, na[i], differ) if i is not None else "") +
                            self.cell(b, self.code_line(b, nb[j], differ) if j is not None else ""))
            body.append("</div></section>")
        return self.page(self.compare_name(a, b), f"{a}.py | {b}.py", "\n".join(body))

    @staticmethod
    def cell(name, inner, kind="line"):
        return f'<div class="side {kind}" data-method="{name}">{inner}</div>'

    def code_line(self, name, n, differ):
        mark = " d" if differ else ""
        return (f'<span class="{line_class(self.files[name][1][n - 1])}{mark}" data-line="{n}">'
                f'<span class="ln">{n}</span>{self.code[name][n - 1]}</span>')

    def segment_head(self, name, segments, n):
        """The heading of the definition that starts at line n (its name, linked, and its lines), or ""."""
        for qual, first, last, node in segments:
            if first == n:
                anchor = f"L{first}" if isinstance(node, ast.Expr) else qual   # the docstring has no name
                return (f'<h3><a href="{name}.html#{esc(anchor)}">{esc(qual)}</a> '
                        f'<span class="lines">L{first}-{last}</span></h3>')
        return ""

    # --- the index ---

    def pictures(self):
        """README.md's pictures: (path, alt text, the README's command that names the file, or None)."""
        out = []
        for alt, path in re.findall(r"!\[([^\]]*)\]\(([^)]+\.png)\)", self.readme):
            prose = re.sub(r"^```.*?^```", "", self.readme, flags=re.M | re.S)   # inline code only: no fences
            commands = [" ".join(c.split()) for c in re.findall(r"`([^`\n]+)`", prose) if path in c and " " in c]
            out.append((path, alt, commands[0] if commands else None))
        return out

    def make_recipe(self, target):
        """The Makefile's recipe lines of `make target`, or []."""
        makefile = self.root / "Makefile"
        if not makefile.exists():
            return []
        m = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", makefile.read_text(), flags=re.M)
        return [s.strip() for s in m[1].splitlines()] if m else []

    def section_text(self, heading):
        """A README section's paragraphs as HTML (`code` and links kept), or "" if it has none."""
        m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", self.readme, flags=re.M | re.S)
        if not m:
            return ""
        paras = [" ".join(p.split()) for p in m[1].strip().split("\n\n") if not p.startswith("```")]
        html_paras = []
        for p in paras:
            s = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(p))
            s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
            html_paras.append(f"<p>{s}</p>")
        return "".join(html_paras)

    def index_page(self):
        body = ['<div class="index">', f"<h1>{esc(self.readme.splitlines()[0].lstrip('# '))}: the reading site</h1>",
                "<p>Each method file as a page to read, its comments beside its code, and any two methods side by "
                "side, role by role. Built from the source by <code>make site</code> (site.py).</p>",
                "<h2>The methods</h2><ul>"]
        for m, (title, oneline, url) in self.papers.items():
            body.append(f'<li><a href="{m}.html"><code>{m}.py</code></a>: {esc(title)}: {inline(oneline, None)} '
                        f'(<a href="{url}">paper</a>)</li>')
        body.append("</ul><h2>Side by side</h2><ul>")
        for a, b in itertools.combinations(self.methods, 2):
            body.append(f'<li><a href="{self.compare_name(a, b)}.html">{a}.py | {b}.py</a></li>')
        body.append("</ul>")
        # the data flow: each step links to where it lives
        flow = [("data.py", "clips (B, T, 3, H, W)"),
                ("sample", " ".join(f'<a href="{m}.html#sample">{m}</a>' for m in self.methods)),
                ("the model", " ".join(f'<a href="{m}.html#{esc(self.model_name(m))}">{m}</a>'
                                       for m in self.methods)),
                ("loss / features", " ".join(f'<a href="{m}.html#{esc(self.model_name(m))}.forward">{m}</a>'
                                             for m in self.methods)),
                ("tools", "train.py, evaluate.py, viz.py, claims.py, bench.py")]
        body.append('<h2>How the pieces meet</h2><div class="flow">' + '<span class="arrow">&rarr;</span>'.join(
            f'<span class="box"><b>{esc(k)}</b><br><small>{v}</small></span>' for k, v in flow) + "</div>")
        body.append(self.section_text("How the pieces meet"))
        # the role table
        body.append("<h2>The skeleton, role by role</h2><table><tr><th>role</th>" +
                    "".join(f"<th>{m}.py</th>" for m in self.methods) + "</tr>")
        for role in ROLES:
            cells = []
            for m in self.methods:
                segments = self.roles[m][role]
                cells.append("<td>" + ("<br>".join(
                    f'<a href="{m}.html#L{first}">{esc(qual)}</a> <small>L{first}</small>'
                    for qual, first, _, _ in segments) or '<span class="missing">missing</span>') + "</td>")
            body.append(f"<tr><th>{role}</th>{''.join(cells)}</tr>")
        body.append("</table>")
        # vit.py
        _, lines, tree = self.files["vit"]
        prose = self.prose["vit"]
        doc = docstring_node(tree)
        body.append(f'<h2>The shared ViT: <a href="vit.html">vit.py</a></h2>'
                    f"<p>{inline(first_sentence(doc.value.value) if doc else '', None)}</p><table>")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                body.append(f'<tr><td><a href="vit.html#{node.name}"><code>{node.name}</code></a></td>'
                            f"<td>{inline(note(node, lines, prose), None)}</td></tr>")
        body.append("</table>")
        # the README's pictures and the command that makes each
        body.append("<h2>The pictures</h2>")
        site_img = []
        for i, (path, alt, command) in enumerate(self.pictures()):
            src = self.root / path
            if not src.exists():
                continue
            site_img.append(src)
            recipe = self.make_recipe(command.split()[1]) if command and command.startswith("make ") else []
            how = (f"Made by <code>{esc(command)}</code>" if command else
                   f"The README names no command that writes {esc(path)}.")
            if recipe:
                how += f", where <code>make {esc(command.split()[1])}</code> runs (Makefile):<ul>" + "".join(
                    f"<li><code>{esc(r)}</code></li>" for r in recipe) + "</ul>"
            body.append(f'<figure><figcaption id="made-by-{i}"><b>{esc(path)}</b>: {esc(alt)}.<br>{how}</figcaption>'
                        f'<a href="#made-by-{i}"><img src="img/{src.name}" alt="{esc(alt)}"></a></figure>')
        body.append("</div>")
        return self.page("index", "Four ways to learn from video: the reading site", "\n".join(body)), site_img

    def model_name(self, m):
        model = model_class(self.files[m][2])
        return model.name if model else "sample"

    def build(self, out):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        # Pygments' colours for the code column and the compare cells, then their own white (the style's grey
        # would be the prose column's)
        (out / "style.css").write_text(CSS + HtmlFormatter(style="default").get_style_defs([".code", ".side"])
                                       + "\n.code, .side { background: #fff; }\n")
        written = []
        for name in self.methods + ["vit"]:
            written.append(out / f"{name}.html")
            written[-1].write_text(self.file_page(name))
        for a, b in itertools.combinations(self.methods, 2):
            written.append(out / f"{self.compare_name(a, b)}.html")
            written[-1].write_text(self.compare_page(a, b))
        index, images = self.index_page()
        written.append(out / "index.html")
        written[-1].write_text(index)
        (out / "img").mkdir(exist_ok=True)
        for src in images:
            shutil.copyfile(src, out / "img" / src.name)
        return written


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the reading site: each method file beside its paper, and any "
                                             "two methods aligned role by role (static HTML, no JavaScript).")
    ap.add_argument("--out", default=str(ROOT / "site"), help="folder to write (default: site/)")
    ap.add_argument("--root", default=str(ROOT), help="the project folder to read (default: this file's)")
    args = ap.parse_args(argv)
    written = Site(args.root).build(args.out)
    print(f"wrote {len(written)} pages to {args.out}/ (open {Path(args.out) / 'index.html'})")


if __name__ == "__main__":
    main()
