"""Turning one document's markup into clean text: HTML main content, Markdown without front matter.

Pure functions of a string; reading files and deciding what to skip is `corpus.py`'s job.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import html2text
import lxml.html
from lxml import etree

# Most specific first: Sphinx/ReadTheDocs `role=main`, then article/main landmarks, then common ids.
MAIN_CONTENT_XPATHS = (
    "//*[@role='main']",
    "//article",
    "//main",
    "//*[@id='content']",
    "//*[@id='main-content']",
    "//body",
)
# Elements that never carry the document's own text.
DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "nav",
    "footer",
    "header",
    "aside",
    "form",
    "svg",
    "iframe",
    "button",
    "template",
)
DROP_XPATH = (
    "//*[@role='navigation' or @role='banner' or @role='contentinfo' or @role='search']"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' sphinxsidebar ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' headerlink ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' related ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' breadcrumb ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' breadcrumbs ')]"
)

# lxml refuses a decoded string that still declares its byte encoding (XHTML pages).
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def tidy(text: str) -> str:
    """Normalise line ends and whitespace runs; keep paragraph breaks (one blank line)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\x00", "")
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _converter() -> html2text.HTML2Text:
    converter = html2text.HTML2Text()
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.body_width = 0  # no hard wrapping: chunking works on paragraphs
    converter.unicode_snob = True
    return converter


def html_title(tree: lxml.html.HtmlElement) -> str:
    for xpath in ("//title", "//h1"):
        found = tree.xpath(xpath)
        if found:
            title = " ".join(found[0].text_content().split())
            if title:
                return title
    return ""


class _FlatText(HTMLParser):
    """The text of a page tag by tag, however deep its nesting (a tokenizer keeps no tree): scripts, styles
    and the head left out, a line break at each block element."""

    SKIP = frozenset({"script", "style", "head", "noscript", "template", "svg"})
    BLOCKS = frozenset(
        {"p", "div", "br", "li", "tr", "pre", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "table"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def flat_html_text(markup: str) -> str:
    """The page's text without its structure: the fallback for a page the parser cannot walk."""
    parser = _FlatText()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return tidy("\n".join(lines))


def html_to_text(markup: str) -> tuple[str, str]:
    """Return (title, text) of an HTML page: its main content only, as Markdown-like text."""
    markup = _XML_DECLARATION.sub("", markup, count=1)
    if not markup.strip():
        return "", ""
    try:
        tree = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return "", ""
    title = html_title(tree)
    main = None
    for xpath in MAIN_CONTENT_XPATHS:
        found = tree.xpath(xpath)
        if found:
            # Several matches (e.g. nested role=main): the outermost holds them all.
            main = found[0]
            break
    if main is None:
        main = tree
    for element in main.xpath(" | ".join(f".//{tag}" for tag in DROP_TAGS)) + main.xpath(
        DROP_XPATH.replace("//", ".//")
    ):
        parent = element.getparent()
        if parent is not None and element is not main:
            element.drop_tree()
    fragment = lxml.html.tostring(main, encoding="unicode")
    return title, tidy(_converter().handle(fragment))


_FRONT_MATTER = re.compile(r"\A(?:---[ \t]*\n.*?\n---[ \t]*|\+\+\+[ \t]*\n.*?\n\+\+\+[ \t]*)(?:\n|\Z)", re.DOTALL)
_TITLE_IN_FRONT_MATTER = re.compile(r"""^title\s*[:=]\s*["']?(.+?)["']?\s*$""", re.MULTILINE)
_SHORTCODE_WITH_TEXT = re.compile(r"""\{\{[<%]\s*(?:heading|glossary_tooltip[^>%]*?text=)\s*"([^"]*)"[^}]*?[>%]\}\}""")
_SHORTCODE = re.compile(r"\{\{[<%].*?[>%]\}\}", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_ATX_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_to_text(source: str) -> tuple[str, str]:
    """Return (title, text) of a Markdown page: front matter, Hugo shortcodes, comments and images removed."""
    source = source.replace("\r\n", "\n").lstrip("\ufeff")
    title = ""
    front = _FRONT_MATTER.match(source)
    if front:
        found = _TITLE_IN_FRONT_MATTER.search(front.group(0))
        if found:
            title = found.group(1).strip()
        source = source[front.end() :]
    source = _HTML_COMMENT.sub("", source)
    source = _SHORTCODE_WITH_TEXT.sub(r"\1", source)
    source = _SHORTCODE.sub("", source)
    source = _MD_IMAGE.sub("", source)
    source = _MD_LINK.sub(r"\1", source)
    if not title:
        heading = _ATX_HEADING.search(source)
        if heading:
            title = heading.group(1).strip()
    return title, tidy(source)
