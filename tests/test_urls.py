"""Source, appearance and site URLs: absolute http(s), a real host, no credentials, nothing a
browser could read differently from us (model.check_url)."""

from __future__ import annotations

import pytest

from claimpress.model import check_url

ACCEPTED = [
    "https://example.org",
    "HTTPS://EXAMPLE.ORG/",
    "http://example.org:8080/a/b?c=d&e=f#g",
    "https://bücher.de/straße",
    "https://xn--bcher-kva.de/",
    "https://en.wikipedia.org/wiki/Fact_(disambiguation)",
    "https://web.archive.org/web/2026/https://example.org/a",
    "https://sub_domain.example.org/",
    "https://192.0.2.1/report.pdf",
    "https://example.org./trailing-dot",
    "https://example.org/%3Cscript%3E",
]

REFUSED = {
    "https://user@example.org/": "user name or password",
    "https://user:pw@example.org/": "user name or password",
    "https://:pw@example.org/": "user name or password",
    "https://example.org%2f@evil.example/": "user name or password",
    "https:///x": "real host name",
    "https:/example.org/": "real host name",
    "https:example.org/a.b": "real host name",
    "https://localhost/": "real host name",
    "https://.org/": "real host name",
    "http://[::1]/": "real host name",
    "http://[::1": "not a valid URL",
    "https://example.org:99999/": "not a valid URL",
    "https://example.org:port/": "not a valid URL",
    "https://x..example.org/": "not a valid host name",
    "https://-x.example.org/": "not a valid host name",
    "https://" + "a" * 64 + ".org/": "not a valid host name",
    "//example.org/": "absolute http",
    "/relative": "absolute http",
    "ftp://example.org/": "absolute http",
    "javascript:alert(1)": "absolute http",
    "JaVaScRiPt://example.org/%0aalert(1)": "absolute http",
    "vbscript:msgbox(1)": "absolute http",
    "data:text/html;base64,PHNjcmlwdD4=": "absolute http",
    "https://example.org/a b": "spaces",
    " https://example.org/": "spaces",
    "https://example.org/\x00": "control",
    "https://example.org/\x1b": "control",
    "https://example.org/\x7f": "control",
    "https://example.org/\u0085": "control",
    "https://exam\u200bple.org/": "invisible",
    "https://exam\u00adple.org/": "invisible",
    "https://example.org/\ufeff": "invisible",
    "https://example.org/\u2028": "control",
    "https://evil.example\\.example.org/": "`\\`",
    "https://example.org\\@evil.example/": "`\\`",
    'https://example.org/"onmouseover="alert(1)': '`"`',
    "https://example.org/<script>": "`<`",
    "https://example.org/`x`": "percent-encode",
}


@pytest.mark.parametrize("url", ACCEPTED)
def test_real_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "reason"), REFUSED.items())
def test_hostile_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_url(url)
    assert reason in str(caught.value)
