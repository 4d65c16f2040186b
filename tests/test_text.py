import pytest

from itsm.text import sanitize_html


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a < b\nc", "<p>a &lt; b<br>c</p>"),
        ("one\n\ntwo", "<p>one</p><p>two</p>"),
        ("<b>bold</b><script>alert(1)</script>", "<b>bold</b>"),
        ("<SCRIPT>x</SCRIPT>y", "y"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer nofollow">x</a>'),
        ('<p onclick="x()">hi</p>', "<p>hi</p>"),
        ("<img src=x onerror=alert(2)>", ""),
    ],
)
def test_user_text_is_sanitised(raw, clean):
    assert sanitize_html(raw) == clean
