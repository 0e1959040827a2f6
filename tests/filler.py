"""Filler Chinese for tests and benchmarks that need many different articles (no third-party
prose): common words strung into clauses by a seeded random generator."""

from __future__ import annotations

import random

WORDS = (
    "城市",
    "社区",
    "居民",
    "书房",
    "图书馆",
    "阅读",
    "服务",
    "志愿者",
    "活动",
    "孩子",
    "老人",
    "周末",
    "文化",
    "公园",
    "街道",
    "讲座",
    "展览",
    "政府",
    "部门",
    "工作",
    "发展",
    "建设",
    "项目",
    "企业",
    "群众",
    "生活",
    "环境",
    "交通",
    "教育",
    "医疗",
    "科技",
    "创新",
    "合作",
    "交流",
    "经验",
)


def filler_article(rng: random.Random, headline: str, paragraphs: int, characters: int) -> str:
    """``headline`` and four words, then ``paragraphs`` paragraphs of about ``characters``
    characters in all, made of clauses of three to seven words."""
    lines = [headline + "".join(rng.choice(WORDS) for _ in range(4))]
    for _ in range(paragraphs):
        paragraph = ""
        while len(paragraph) < characters / paragraphs:
            clause = "".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
            more = "".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))
            paragraph += f"{clause}，{more}。"
        lines.append(paragraph)
    return "\n\n".join(lines)
