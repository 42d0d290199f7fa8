"""Sessions as answers: a session ranked by the scores of its matching documents.

Pure functions over plain (session_id, score) rows, so that an offline tuning script can
call them with the fused ranking's rows and cross-validate the parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RankedSession:
    session_id: str
    score: float
    # Positions of the session's rows in the input, its best first.
    rows: tuple[int, ...]

    @property
    def matched(self) -> int:
        return len(self.rows)


def rank_sessions(
    rows: Iterable[tuple[str, float]],
    *,
    evidence_weight: float = 0.2,
    evidence_hits: int = 2,
) -> list[RankedSession]:
    """Group scored documents by session; sessions best first, each once.

    A session's score is its best document's score plus `evidence_weight` times the sum of
    its next `evidence_hits` best scores. With a small weight the best hit decides and
    further evidence settles near ties; 0 ranks a session by its best hit alone. Equal
    scores keep the order of the sessions' best rows in the input (the fused ranking).
    """
    if evidence_weight < 0 or evidence_hits < 0:
        raise ValueError("evidence_weight and evidence_hits must not be negative")
    by_session: dict[str, list[tuple[float, int]]] = {}
    for i, (session_id, score) in enumerate(rows):
        by_session.setdefault(session_id, []).append((float(score), i))
    ranked: list[tuple[float, int, RankedSession]] = []
    for session_id, scored in by_session.items():
        scored.sort(key=lambda si: (-si[0], si[1]))
        best = scored[0][0]
        more = sum(score for score, _ in scored[1 : 1 + evidence_hits])
        total = best + evidence_weight * more
        first = min(i for _, i in scored)
        ranked.append((total, first, RankedSession(session_id, total, tuple(i for _, i in scored))))
    ranked.sort(key=lambda t: (-t[0], t[1]))
    return [r for _, _, r in ranked]
