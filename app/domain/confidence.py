"""How likely a hit is relevant, from its arms' scores on fixed scales.

A logistic calibration of the cosine and of BM25 over the query's idf sum (`text_norm`),
one per search mode. `ctxsearch tune` fits it on judged queries of three kinds of data
(agent sessions, LoCoMo conversations, SciFact) plus each agent-session query run in the
other projects, where nothing is relevant; each of those four groups weighs the same, so
no one kind of data sets the scale. Neither input depends on the project's size or the
query's length, so a threshold means the same everywhere.

Fitted by `ctxsearch tune` on the dev data (README, Relevance). Held out by agent-session
project, at 0.5 a query keeps its top hit in its own project 95% of the time, and in another
project gets 0.05 hits on average (98% get none); at 0.2, 99% and 0.25 (93% none). The scale
is shared by all kinds of data, so it is not equally sharp for each: conversational memories
(LoCoMo) are relevant at 0.1-0.3, code sessions mostly above 0.5.
"""

from __future__ import annotations

import math

# mode -> (cosine weight, text_norm weight, bias)
CALIBRATION: dict[str, tuple[float, float, float]] = {
    "hybrid": (2.711, 4.482, -5.299),
    "vector": (7.266, 0.0, -5.13),
    "text": (0.0, 4.922, -4.495),
}


def confidence(mode: str, cosine: float | None, text_norm: float | None) -> float:
    """P(relevant) for a hit; a missing arm's score counts as no evidence (0)."""
    wc, wt, bias = CALIBRATION[mode]
    z = bias + wc * (cosine or 0.0) + wt * (text_norm or 0.0)
    return round(1.0 / (1.0 + math.exp(-z)), 4)
