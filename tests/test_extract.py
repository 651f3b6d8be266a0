from simrag.extract import html_to_text, markdown_to_text, tidy

SPHINX_PAGE = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html><html><head><title>Lazy Views — Flask</title><style>body{color:red}</style>
<script>var tracking = "do not index me";</script></head>
<body>
<nav class="top"><a href="/">Home</a> NAVIGATION-MENU</nav>
<div class="document"><div class="body" role="main">
<h1>Lazy Views<a class="headerlink" href="#x">¶</a></h1>
<p>Flask is usually used with the <em>decorators</em>.</p>
<p>A second paragraph about central URL maps.</p>
</div></div>
<div class="sphinxsidebar" role="navigation"><p>SIDEBAR-LINKS</p></div>
<footer>FOOTER-COPYRIGHT</footer>
</body></html>"""


def test_html_keeps_main_content_and_drops_navigation():
    title, text = html_to_text(SPHINX_PAGE)
    assert title == "Lazy Views — Flask"
    assert "Flask is usually used with the decorators." in text
    assert "A second paragraph about central URL maps." in text
    for noise in ("NAVIGATION-MENU", "SIDEBAR-LINKS", "FOOTER-COPYRIGHT", "tracking", "color:red", "¶"):
        assert noise not in text


def test_html_prefers_article_over_page_chrome():
    page = (
        "<html><body><header>SITE-HEADER</header><main><aside>RELATED</aside>"
        "<article><h1>T</h1><p>Body text here.</p></article></main></body></html>"
    )
    title, text = html_to_text(page)
    assert title == "T"
    assert "Body text here." in text
    assert "SITE-HEADER" not in text and "RELATED" not in text


def test_html_without_landmarks_uses_body_and_handles_garbage():
    assert "plain words" in html_to_text("<html><body><div><p>plain words</p></div></body></html>")[1]
    assert html_to_text("") == ("", "")
    assert html_to_text("   ") == ("", "")


def test_markdown_strips_front_matter_shortcodes_comments_and_images():
    source = (
        "---\ntitle: Hello Minikube\nweight: 5\n---\n\n"
        "Intro text.\n\n{{< note >}}\nA note body.\n{{< /note >}}\n\n"
        '## {{% heading "prerequisites" %}}\n\n<!-- hidden -->\n![diagram](img/x.png)\n'
        "See [the docs](https://example.org/docs) for more.\n"
    )
    title, text = markdown_to_text(source)
    assert title == "Hello Minikube"
    assert "weight" not in text and "{{" not in text and "hidden" not in text and "img/x.png" not in text
    assert "A note body." in text
    assert "## prerequisites" in text
    assert "See the docs for more." in text


def test_markdown_title_falls_back_to_first_heading():
    assert markdown_to_text("intro\n\n## Setup\n\ntext")[0] == "Setup"
    assert markdown_to_text("no heading at all")[0] == ""


def test_tidy_collapses_blank_runs_but_keeps_paragraphs():
    assert tidy("a  \r\n\r\n\n\n b\u00a0c\x00") == "a\n\n b c"
