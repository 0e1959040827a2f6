"""Pages built at test time around the seed's text (its prose stays in ../shared)."""

from __future__ import annotations

import html


def seed_page(seed_text: str) -> str:
    """A news page around the seed's text, the way portals lay one out."""
    lines = [line.strip() for line in seed_text.splitlines() if line.strip()]
    spam, site, nav, crumb, title, dateline = lines[:6]
    credit_at = next(i for i, line in enumerate(lines) if "通訊員" in line)
    body, footer = lines[6:credit_at], lines[credit_at:]
    esc = html.escape
    parts = []
    i = 0
    while i < len(body):
        if any(c in body[i] for c in ",，。"):
            parts.append(f"<p>{esc(body[i])}</p>")
            i += 1
        else:  # a two-line subheading
            parts.append(f"<h3>{esc(body[i])}<br>{esc(body[i + 1])}</h3>")
            i += 2
    links = "".join(
        f'<a href="/c{n}.html">{esc(x.strip())}</a>' for n, x in enumerate(nav.split("|"))
    )
    related = "".join(
        f'<li><a href="/news/{n}.html">{headline}</a><span>2024-07-0{n}</span></li>'
        for n, headline in enumerate(
            [
                "黄河风情线夜景提升工程启动",
                "全市中小学暑期安全教育周开幕",
                "新建城市公园向市民开放",
            ],
            1,
        )
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{esc(spam)}</title></head>
<body>
<div class="header"><div class="logo">{esc(site)}</div><div class="nav">{links}</div></div>
<div class="crumb">{esc(crumb)}</div>
<div class="article">
<h1>{esc(title)}</h1>
<div class="info">{esc(dateline)}</div>
<div class="content">{"".join(parts)}</div>
<div class="article-footer">{"".join(f"<p>{esc(line)}</p>" for line in footer)}</div>
</div>
<div class="related"><h3>相关新闻</h3><ul>{related}</ul></div>
<div class="footer">Copyright © 2024 版权所有</div>
</body></html>"""
