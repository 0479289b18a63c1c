"""A seeded, vectorised generator of learners, courses and interactions with known ground truth.

The latent model (documented in docs/data.md, "Synthetic data"):
- every learner has a job, a primary and a secondary theme (mostly their job's), a starting skill
  level (0 beginner .. 2 advanced), a pace (adaptive learners progress about one level over the
  period, non-adaptive ones barely move) and a hidden taste cluster;
- every course has a theme, a difficulty, a hidden taste cluster, a quality and a popularity;
- each interaction picks a course by one of three reasons: theme (55%: primary or secondary theme),
  taste (30%: same hidden taste cluster, any theme) or popularity (15%), always weighted by
  popularity and by how well the course difficulty matches the learner's level at that moment.
So content models see themes, CF sees themes and tastes, and level-aware models see the level.
Outcomes (completion, watch percentage, grade, rating) follow a utility of theme and taste match,
quality and the level gap; adaptive learners cope better with courses above their level.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import LIST_SEPARATOR
from .vocabulary import (
    AUDIENCE_SENTENCES,
    LEVEL_CLOSINGS,
    LEVELS,
    OPENINGS,
    OUTCOME_SENTENCES,
    SKILL_SENTENCES,
    THEMES,
    TITLE_PREFIX,
    TITLE_SUFFIX,
)

GENERATOR_VERSION = 1
N_TASTES = 8
START = np.datetime64("2025-01-06T00:00:00", "s")
REASON_SHARES = (0.55, 0.30, 0.15)  # theme, taste, popularity
LEVEL_KERNEL = np.array([1.0, 0.25, 0.04])  # weight by |difficulty - level|
FILES = ("learners", "courses", "interactions", "truth_learners", "truth_courses")


@dataclass(frozen=True)
class SyntheticSpec:
    learners: int
    courses: int
    interactions: int
    weeks: int = 12
    seed: int = 0

    def folder_name(self) -> str:
        return (
            f"synthetic-{self.learners}x{self.courses}x{self.interactions}"
            f"-w{self.weeks}-s{self.seed}-v{GENERATOR_VERSION}"
        )


SIZES: dict[str, SyntheticSpec] = {
    "XS": SyntheticSpec(800, 80, 12_000),
    "S": SyntheticSpec(10_000, 500, 200_000),
    "M": SyntheticSpec(100_000, 2_000, 2_000_000),
    "L": SyntheticSpec(1_000_000, 5_000, 20_000_000),
}


def _jobs() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Job names with their main and second theme (the next theme listing the job, else a neighbour)."""
    names: list[str] = []
    for theme in THEMES:
        names.extend(j for j in theme.jobs if j not in names)
    main = np.array([next(i for i, t in enumerate(THEMES) if j in t.jobs) for j in names])
    second = np.array(
        [
            next((i for i, t in enumerate(THEMES) if j in t.jobs and i != m), (m + 1) % len(THEMES))
            for j, m in zip(names, main)
        ]
    )
    return names, main, second


class _GroupSampler:
    """Samples one course per draw from many weighted groups at once (stacked CDFs + searchsorted)."""

    def __init__(self, groups: list[tuple[np.ndarray, np.ndarray]]):
        keys, members = [], []
        for g, (idx, weight) in enumerate(groups):
            cdf = np.cumsum(weight, dtype=np.float64)
            cdf /= cdf[-1]
            cdf[-1] = 1.0
            keys.append(g + cdf)
            members.append(idx)
        self.keys = np.concatenate(keys)
        self.members = np.concatenate(members).astype(np.int32)

    def sample(self, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = 1.0 - rng.random(len(group))  # (0, 1]: stays inside the group's CDF
        pos = np.searchsorted(self.keys, group + u, side="left")
        return self.members[pos]


def _dictionary(ids: list[str], codes: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(ids))


def _course_texts(
    rng: np.random.Generator, theme: np.ndarray, level: np.ndarray, software: list[str]
) -> tuple[list[str], list[str]]:
    titles, descriptions = [], []
    for t, lv, sw in zip(theme, level, software):
        th, lvl = THEMES[t], LEVELS[lv]
        topic = th.topics[rng.integers(len(th.topics))]
        suffix = TITLE_SUFFIX[rng.integers(len(TITLE_SUFFIX))]
        prefix = TITLE_PREFIX[lvl][rng.integers(len(TITLE_PREFIX[lvl]))]
        titles.append(" ".join(p for p in (prefix, topic[0].upper() + topic[1:], "with", sw, suffix) if p))
        s1, s2 = rng.choice(len(th.skills), 2, replace=False)
        fill = dict(
            topic=topic,
            software=sw,
            skill=th.skills[s1],
            skill2=th.skills[s2],
            theme=th.name.lower(),
            outcome=th.outcomes[rng.integers(len(th.outcomes))],
            job=th.jobs[rng.integers(len(th.jobs))],
        )
        parts = [OPENINGS[lvl][rng.integers(3)]]
        parts += [
            SKILL_SENTENCES[i] for i in rng.choice(len(SKILL_SENTENCES), 1 + rng.integers(2), replace=False)
        ]
        parts.append(OUTCOME_SENTENCES[rng.integers(len(OUTCOME_SENTENCES))])
        if rng.random() < 0.7:
            parts.append(AUDIENCE_SENTENCES[rng.integers(len(AUDIENCE_SENTENCES))])
        parts += [LEVEL_CLOSINGS[lvl][i] for i in rng.choice(3, 1 + rng.integers(2), replace=False)]
        descriptions.append(" ".join(p.format(**fill) for p in parts))
    return titles, descriptions


def generate(
    spec: SyntheticSpec, progress: Callable[[str], None] = lambda stage: None
) -> dict[str, pa.Table]:
    """Generate the five tables (``FILES``) in memory as pyarrow tables."""
    rng = np.random.default_rng(spec.seed)
    n_l, n_c, n_t = spec.learners, spec.courses, len(THEMES)

    progress("courses")
    c_theme = rng.integers(n_t, size=n_c)
    c_level = rng.choice(3, size=n_c, p=[0.45, 0.35, 0.20])
    c_taste = rng.integers(N_TASTES, size=n_c)
    c_quality = rng.normal(size=n_c)
    c_pop = np.exp(0.8 * c_quality + rng.normal(0, 0.8, size=n_c))
    c_software = [THEMES[t].software[rng.integers(4)] for t in c_theme]
    titles, descriptions = _course_texts(rng, c_theme, c_level, c_software)
    duration = np.round(np.exp(rng.normal(np.log(60) + 0.6 * c_level, 0.5)), 1)
    course_ids = [f"C{i:05d}" for i in range(n_c)]
    prereqs = []
    for i in range(n_c):
        lower = np.flatnonzero((c_theme == c_theme[i]) & (c_level == c_level[i] - 1))
        k = min(len(lower), int(rng.integers(0, 3))) if c_level[i] else 0
        prereqs.append(
            LIST_SEPARATOR.join(course_ids[j] for j in sorted(rng.choice(lower, k, replace=False))) or None
        )
    courses = pa.table(
        {
            "course_id": course_ids,
            "title": titles,
            "description": descriptions,
            "difficulty": [LEVELS[v] for v in c_level],
            "theme": [THEMES[t].name for t in c_theme],
            "software": c_software,
            "job": [LIST_SEPARATOR.join(THEMES[t].jobs) for t in c_theme],
            "duration_min": duration,
            "prerequisites": prereqs,
        }
    )
    truth_courses = pa.table(
        {
            "course_id": course_ids,
            "cognitively_intensive": c_level > 0,
            "taste_cluster": c_taste.astype(np.int16),
            "quality": c_quality,
        }
    )

    progress("learners")
    job_names, job_main, job_second = _jobs()
    l_job = rng.integers(len(job_names), size=n_l)
    l_primary = np.where(rng.random(n_l) < 0.75, job_main[l_job], rng.integers(n_t, size=n_l))
    l_secondary = np.where(rng.random(n_l) < 0.5, job_second[l_job], rng.integers(n_t, size=n_l))
    l_secondary = np.where(
        l_secondary == l_primary, (l_primary + 1 + rng.integers(n_t - 1, size=n_l)) % n_t, l_secondary
    )
    l_level = rng.choice(3, size=n_l, p=[0.5, 0.35, 0.15])
    l_adaptive = rng.random(n_l) < 0.3 + 0.1 * l_level
    l_taste = rng.integers(N_TASTES, size=n_l)
    # software skills: 1-3 tools of the primary theme, as one of the theme's combinations
    combos = [
        [LIST_SEPARATOR.join(c) for r in (1, 2, 3) for c in itertools.combinations(t.software, r)]
        for t in THEMES
    ]
    combo_vocab = sorted({c for cs in combos for c in cs})
    combo_code = np.array([[combo_vocab.index(c) for c in cs] for cs in combos])
    l_software = combo_code[l_primary, rng.integers(combo_code.shape[1], size=n_l)]
    learner_ids = [f"L{i:07d}" for i in range(n_l)]
    learners = pa.table(
        {
            "learner_id": learner_ids,
            "job": _dictionary(job_names, l_job),
            "software": _dictionary(combo_vocab, l_software),
        }
    )
    truth_learners = pa.table(
        {
            "learner_id": learner_ids,
            "adaptive": l_adaptive,
            "skill_level": _dictionary(list(LEVELS), l_level),
            "primary_theme": _dictionary([t.name for t in THEMES], l_primary),
            "secondary_theme": _dictionary([t.name for t in THEMES], l_secondary),
            "taste_cluster": l_taste.astype(np.int16),
        }
    )

    progress("interactions")
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    for key_values, n_keys in ((c_theme, n_t), (c_taste, N_TASTES), (np.zeros(n_c, int), 1)):
        for k in range(n_keys):
            members = np.flatnonzero(key_values == k)
            for lv in range(3):
                groups.append((members, c_pop[members] * LEVEL_KERNEL[np.abs(c_level[members] - lv)]))
    sampler = _GroupSampler(groups)
    base = {"theme": 0, "taste": 3 * n_t, "popularity": 3 * (n_t + N_TASTES)}
    activity = np.where(l_adaptive, 1.3, 0.85)
    activity *= (spec.interactions / n_l) / activity.mean()
    gain = np.where(l_adaptive, 1.3, 0.3)

    def draw(factor: float):
        """Draw ``factor`` times the target, then keep one row per (learner, course)."""
        counts = 1 + rng.poisson(rng.gamma(2.0, np.maximum(activity * factor - 1, 0.05) / 2.0))
        learner = np.repeat(np.arange(n_l, dtype=np.int32), counts)
        t_frac = rng.random(len(learner), dtype=np.float32)
        level = np.clip(np.rint(l_level[learner] + gain[learner] * t_frac), 0, 2).astype(np.int8)
        reason = rng.choice(3, size=len(learner), p=REASON_SHARES)
        theme = np.where(rng.random(len(learner)) < 0.75, l_primary[learner], l_secondary[learner])
        group = (
            np.where(
                reason == 0,
                base["theme"] + 3 * theme,
                np.where(reason == 1, base["taste"] + 3 * l_taste[learner], base["popularity"]),
            )
            + level
        )
        course = sampler.sample(group, rng)
        _, first = np.unique(learner.astype(np.int64) * n_c + course, return_index=True)
        return learner[first], course[first], t_frac[first], level[first]

    factor = 1.15
    learner, course, t_frac, eff_level = draw(factor)
    while len(learner) < spec.interactions and factor < 8:
        factor *= 1.05 * spec.interactions / len(learner)
        learner, course, t_frac, eff_level = draw(factor)
    if len(learner) > spec.interactions:
        keep = np.sort(rng.choice(len(learner), spec.interactions, replace=False))
        learner, course, t_frac, eff_level = learner[keep], course[keep], t_frac[keep], eff_level[keep]
    n = len(learner)

    progress("outcomes")
    adaptive = l_adaptive[learner]
    theme_match = np.where(
        c_theme[course] == l_primary[learner],
        1.0,
        np.where(c_theme[course] == l_secondary[learner], 0.5, 0.0),
    )
    taste_match = (c_taste[course] == l_taste[learner]).astype(np.float64)
    gap = c_level[course] - eff_level
    utility = (
        0.8 * theme_match
        + 0.6 * taste_match
        + 0.4 * c_quality[course]
        - np.where(adaptive, 0.35, 0.9) * np.maximum(gap, 0)
        - 0.3 * np.maximum(-gap, 0)
        + rng.normal(0, 0.5, size=n)
    )
    logit = 1.2 * utility + np.where(adaptive, 0.8, -0.4)
    completed = rng.random(n) < 1 / (1 + np.exp(-logit))
    watch = np.where(completed, 100.0, np.round(100 * rng.beta(2, 3, size=n), 1))
    grade = np.clip(
        55 + 12 * utility + 10 * adaptive + 4 * l_level[learner] + rng.normal(0, 8, size=n), 0, 100
    )
    grade = np.where(completed | (watch >= 60), np.round(grade, 1), np.nan)
    rating = np.clip(np.rint(3 + 1.1 * utility + rng.normal(0, 0.6, size=n)), 1, 5)
    rating = np.where(rng.random(n) < 0.6, rating, np.nan)
    start = rng.integers(0, 14 * 86400, size=n_l)[learner]
    span = (spec.weeks * 7 - 14) * 86400
    ts = START + (start + t_frac.astype(np.float64) * span + rng.integers(0, 3600, size=n)).astype(
        "timedelta64[s]"
    )
    interactions = pa.table(
        {
            "learner_id": _dictionary(learner_ids, learner),
            "course_id": _dictionary(course_ids, course),
            "rating": pa.array(rating.astype(np.float32), from_pandas=True),  # NaN -> null
            "watch_pct": watch.astype(np.float32),
            "grade": pa.array(grade.astype(np.float32), from_pandas=True),
            "completed": completed,
            "ts": pa.array(ts, pa.timestamp("s")),
        }
    )
    return {
        "learners": learners,
        "courses": courses,
        "interactions": interactions,
        "truth_learners": truth_learners,
        "truth_courses": truth_courses,
    }


def write_dataset(
    spec: SyntheticSpec, out: str | os.PathLike, progress: Callable[[str], None] = lambda stage: None
) -> Path:
    """Generate and write ``<name>.parquet`` for each table plus ``manifest.json`` into ``out``.

    The folder appears complete or not at all: files go to a temporary sibling folder first.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = generate(spec, progress)
    progress("writing")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "spec": asdict(spec),
            "rows": {name: t.num_rows for name, t in tables.items()},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure_dataset(
    spec: SyntheticSpec, root: str | os.PathLike, progress: Callable[[str], None] = lambda stage: None
) -> Path:
    """The folder of ``spec`` under ``root``, generated once and reused afterwards."""
    folder = Path(root) / spec.folder_name()
    if not (folder / "manifest.json").exists():
        write_dataset(spec, folder, progress)
    return folder
