"""LaTeX fragments in titles and abstracts, as the plain text a reader (and a small model) reads.

arXiv abstracts are plain text with a little LaTeX: `$360^\\circ$`, `$\\times$`, `\\eg`,
`\\textmu`, `{MetaMathQA}`. Shown to Qwen2.5-Coder 1.5B as they are, they came back garbled
(`$360^"}$`). A full LaTeX parser (pylatexenc) was tried on paper and rejected: it reads the rest
of an abstract as LaTeX too, so an unescaped "20% of" starts a comment that swallows the line and
"~10x" becomes a space. This converts only what is LaTeX for sure: `$…$` spans, backslash
commands it knows and bare groups; everything else is left as it was.
"""

import re

SYMBOLS = {
    "times": "×", "cdot": "·", "circ": "°", "degree": "°", "pm": "±", "mp": "∓", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "~", "simeq": "≃", "propto": "∝",
    "infty": "∞", "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒", "in": "∈",
    "sum": "∑", "prod": "∏", "partial": "∂", "nabla": "∇", "ell": "ℓ", "dots": "…", "ldots": "…",
    "cdots": "⋯", "mu": "μ", "textmu": "µ", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ",
    "epsilon": "ε", "varepsilon": "ε", "theta": "θ", "lambda": "λ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "phi": "φ", "varphi": "φ", "omega": "ω", "Delta": "Δ", "Omega": "Ω", "Sigma": "Σ",
    "eg": "e.g.", "ie": "i.e.", "etal": "et al.", "vs": "vs.", "%": "%", "&": "&", "_": "_", "#": "#",
    "$": "$", "{": "{", "}": "}", "textasciitilde": "~", "textbackslash": "\\", ",": " ", ";": " ",
    "quad": " ", "qquad": " ", "!": "",
}
# Commands whose argument is the text itself: \textbf{Fast} -> Fast.
WRAPPERS = ("text", "textbf", "textit", "texttt", "textrm", "textsc", "emph", "mathrm", "mathbf", "mathit",
            "mathcal", "mathbb", "operatorname", "boldsymbol", "bm", "underline", "url", "mbox")
# The space after a command stays: abstracts write "\\eg ASR" for "e.g. ASR".
COMMAND = re.compile(r"\\(?:([A-Za-z]+)\b|([%&_#${},;!]))")
WRAPPED = re.compile(r"\\(?:" + "|".join(WRAPPERS) + r")\s*\{([^{}]*)\}")
# Math: no space just inside the dollars, and markup or a short symbol inside ("$5 and $10" is money).
MATH = re.compile(r"(?<!\\)\$(?=\S)((?:[^$]{0,200}?[\\^_{][^$]{0,200}?)|[^$\s]{1,3})(?<=\S)(?<!\\)\$")
# A bare group, braces that only keep a word's capitals in BibTeX style: MetaMath's abstract writes
# "{MetaMathQA}", "{MetaMath-70B}" and "{GPT-3.5-Turbo}", and Qwen2.5-Coder 1.5B copied the braces
# into its 主要工作 and 亮点 ("生成了一个新的数据集 {MetaMathQA}", stop 44's bench, seed 7).
# LaTeX prints the text alone. Not after a letter, digit, backslash, ^ or _ (a command's or a
# script's argument) or a dollar (${name} is a template's); not around a dollar, a backslash or
# another brace (\{x\} prints braces).
GROUP = re.compile(r"(?<![\\\w^_$])\{([^{}$\\]{1,80})\}")


def latex_to_text(text: str) -> str:
    """`text` with its `$…$` spans and known LaTeX commands turned into Unicode and its bare groups
    into their text; the rest untouched."""
    if "\\" not in text and "$" not in text and "{" not in text:
        return text
    text = MATH.sub(lambda m: _math(m.group(1)), text)
    return _commands(GROUP.sub(r"\1", text))  # before the commands: an escaped \{ stays a brace


def _math(body: str) -> str:
    body = _commands(body)
    # Superscripts and subscripts lose their markup: ^{\circ} -> °, x_{i} -> xi, 10^{6} -> 10^6.
    body = re.sub(r"\^\{?°\}?", "°", body)
    body = re.sub(r"([_^])\{([^{}]*)\}", lambda m: ("^" if m.group(1) == "^" else "") + m.group(2), body)
    body = body.replace("_", "").replace("{", "").replace("}", "")
    return body.strip()


def _commands(text: str) -> str:
    for _ in range(3):  # nested wrappers: \textbf{\emph{x}}
        text, count = WRAPPED.subn(r"\1", text)
        if not count:
            break
    return COMMAND.sub(lambda m: SYMBOLS.get(m.group(1) or m.group(2), m.group(0)), text)
