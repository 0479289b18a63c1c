"""Which source the pipeline reads, and how strictly it validates it."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from dagster import ConfigurableResource
from pydantic import Field

from coursepilot.cleaning import Policy
from coursepilot.home import ProjectHome
from coursepilot.sources import FORMATS, SourceData, load_source, source_env
from coursepilot.synthetic import SIZES, ensure_dataset


class DatasetResource(ConfigurableResource):
    """The data source: a format, where its files are, and the validation policy."""

    format: str = Field(default="synthetic", description=f"one of: {', '.join(FORMATS)}")
    path: Optional[str] = Field(
        default=None,
        description="file or folder of the source; synthetic: generated under the project home when empty",
    )
    mapping: Optional[str] = Field(default=None, description="generic format: the YAML column mapping file")
    size: str = Field(default="S", description=f"synthetic size preset: {', '.join(SIZES)}")
    seed: int = Field(default=0, description="synthetic generator seed")
    strict: bool = Field(
        default=False, description="treat documented repairs (duplicates, orphans, long text) as errors"
    )
    max_orphan_share: float = Field(
        default=0.05, description="largest share of orphan interactions dropped as a repair"
    )

    @classmethod
    def from_env(cls) -> "DatasetResource":
        """Defaults overridden by ``COURSEPILOT_SOURCE_*`` / ``COURSEPILOT_SYNTHETIC_SIZE`` /
        ``COURSEPILOT_SEED``."""
        return cls(**source_env())

    @property
    def policy(self) -> Policy:
        return Policy(strict=self.strict, max_orphan_share=self.max_orphan_share, rankable=True)

    def describe(self) -> str:
        if self.format == "synthetic" and not self.path:
            return f"synthetic size {self.size} (seed {self.seed})"
        return f"{self.format} at {self.path}"

    def load(self, home: ProjectHome) -> SourceData:
        """Read the source; the default synthetic data is generated once under ``home/data``."""
        if self.format == "synthetic" and not self.path:
            if self.size not in SIZES:
                raise ValueError(f"unknown synthetic size {self.size!r}; choose one of {', '.join(SIZES)}")
            folder = ensure_dataset(replace(SIZES[self.size], seed=self.seed), home.data)
            return load_source("synthetic", folder)
        if not self.path:
            raise ValueError(f"the {self.format!r} source needs a path (COURSEPILOT_SOURCE_PATH or --data)")
        return load_source(self.format, self.path, self.mapping)
