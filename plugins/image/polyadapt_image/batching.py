"""Which image requests of a batch can share one pipeline call.

A pipeline call has one adapter, one image size, one number of steps and one guidance
scale; its prompts are a list. :func:`group_calls` sorts a batch's requests (already
resolved to :class:`ImageJob`, defaults filled in) into calls by those settings, in the
order they first appear, and never puts more than ``max_images`` images into one call. A
request is never split: one that alone asks for more gets a call of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageJob:
    """One request with the servable's defaults filled in: everything its images depend on."""

    index: int
    prompt: str
    adapter: str | None
    n: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int

    def call_key(self) -> tuple:
        """Jobs with equal keys can be drawn by one pipeline call."""
        return (self.adapter, self.width, self.height, self.steps, self.guidance_scale)


def group_calls(jobs: list[ImageJob], max_images: int) -> list[list[ImageJob]]:
    """``jobs`` grouped into pipeline calls: equal :meth:`ImageJob.call_key`, at most
    ``max_images`` images each (a larger single request gets a call of its own)."""
    groups: dict[tuple, list[list[ImageJob]]] = {}
    for job in jobs:
        calls = groups.setdefault(job.call_key(), [[]])
        if calls[-1] and sum(j.n for j in calls[-1]) + job.n > max_images:
            calls.append([])
        calls[-1].append(job)
    return [call for calls in groups.values() for call in calls]
