"""User-written rich text is sanitised once, on the way in, with nh3 (an allow-list HTML cleaner)."""

import html
import re

import nh3

ALLOWED_TAGS = frozenset(
    {"p", "br", "strong", "b", "em", "i", "u", "s", "ul", "ol", "li", "a", "code", "pre", "blockquote", "h3", "h4"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})


_TAG = re.compile(r"</?[a-zA-Z!]")


def sanitize_html(text: str) -> str:
    """Return safe HTML. Plain text (nothing that looks like a tag, though "a < b" is fine) is escaped and keeps its
    paragraphs and line breaks; HTML is cleaned against an allow-list."""
    if not _TAG.search(text):
        paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
        return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return nh3.clean(
        text,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
    )
