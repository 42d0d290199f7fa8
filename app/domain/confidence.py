"""How likely a hit is relevant, from its arms' scores on fixed scales.

A logistic calibration of the cosine and of BM25 over the query's idf sum (`text_norm`),
one per search mode. `ctxsearch tune` fits it on judged queries of three kinds of data
(agent sessions, LoCoMo conversations, SciFact) plus each agent-session query run in the
other projects, where nothing is relevant; each of those four groups weighs the same, so
no one kind of data sets the scale. Neither input depends on the project's size or the
query's length, so a threshold means the same everywhere.

Fitted by `ctxsearch tune` on the dev data (README, Relevance). Held out by agent-session
project, at 0.5 a query keeps its top hit in its own project 93% of the time, and in another
project gets 0.006 hits on average (99.6% get none); at 0.3, 99.5% and 0.06 (97% none). The
scale is shared by all kinds of data, so it is not equally sharp for each: conversational
memories (LoCoMo) are relevant at 0.1-0.3, code sessions mostly above 0.5.
"""

from __future__ import annotations

import math

# mode -> (cosine weight, text_norm weight, bias)
CALIBRATION = {
    "hybrid": (2.072, 4.628, -4.925),
    "vector": (7.266, 0.0, -5.134),
    "text": (0.0, 5.12, -4.407),
}


Calibration = dict[str, tuple[float, float, float]]


def _logistic(coef: tuple[float, float, float], cosine: float, text_norm: float) -> float:
    wc, wt, bias = coef
    return 1.0 / (1.0 + math.exp(-(bias + wc * cosine + wt * text_norm)))


def confidence(
    mode: str, cosine: float | None, text_norm: float | None, calibration: Calibration = CALIBRATION
) -> float:
    """P(relevant) for a hit; a missing arm's score counts as no evidence (0).

    In hybrid mode a hit is as likely relevant as either model says: a long prompt's words
    that match nothing lower the text arm's share, not what its meaning already shows.
    """
    cosine, text_norm = cosine or 0.0, text_norm or 0.0
    p = _logistic(calibration[mode], cosine, text_norm)
    if mode == "hybrid":
        p = max(p, _logistic(calibration["vector"], cosine, 0.0))
    return round(p, 4)
