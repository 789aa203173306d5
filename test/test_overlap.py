"""Tests of overlap.py: two stages on two threads, in order, bounded, latest wins; and the
pipeline's two halves run through it giving what `process` gives.

Overlap is proven with events, not timings: stage two of set N waits (with a timeout)
until stage one has started on set N + 1, which it can only see when both run at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from depth_any_view.overlap import TwoStageRunner

WAIT_S = 10.0  # generous: an event that never comes fails the test, a slow machine does not


def _wait_until(condition: Any, timeout: float = WAIT_S) -> bool:
    """Poll `condition()` until True or `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.002)
    return bool(condition())


def test_stage_two_of_a_set_runs_while_stage_one_runs_the_next() -> None:
    started = {k: threading.Event() for k in range(6)}  # stage one began item k
    overlapped: list[int] = []
    outputs: list[int] = []
    done = threading.Event()

    def first(k: int) -> int:
        started[k].set()
        return k

    def second(k: int) -> None:
        if k + 1 in started:  # only returns early if stage one runs item k + 1 meanwhile
            runner.put(k + 1)
            if started[k + 1].wait(WAIT_S):
                overlapped.append(k)
        outputs.append(k)
        if k == 5:
            done.set()

    runner = TwoStageRunner(first, second)
    try:
        runner.put(0)
        assert done.wait(WAIT_S * 7)
        assert overlapped == [0, 1, 2, 3, 4] and outputs == [0, 1, 2, 3, 4, 5]
        c = runner.concurrency()
        assert c["max_active"] == 2 and c["overlap_s"] > 0.0
    finally:
        runner.close()
    assert not runner.is_alive()


def test_outputs_keep_the_input_order_and_the_latest_input_wins() -> None:
    """Items put faster than stage one takes them replace each other (put says so); every
    item stage one finishes reaches stage two, in the order they were put."""
    taken: list[int] = []
    outputs: list[int] = []
    gate = threading.Event()

    def first(k: int) -> int:
        gate.wait(WAIT_S)  # hold stage one so that later puts replace each other
        taken.append(k)
        return k

    runner = TwoStageRunner(first, outputs.append)
    try:
        replaced = [runner.put(k) for k in range(200)]
        gate.set()
        assert _wait_until(lambda: outputs and outputs[-1] == 199)
        assert any(replaced)  # some inputs were superseded, not queued
        assert outputs == taken and outputs == sorted(set(outputs))  # in order, no repeats
        assert len(outputs) + sum(replaced) == 200  # each input: processed or superseded
    finally:
        runner.close()


def test_at_most_one_set_waits_between_the_stages() -> None:
    """With stage two stuck, stage one hands over one set, runs one more and waits: three
    sets in flight at most, however many arrive."""
    release = threading.Event()
    first_done: list[int] = []
    outputs: list[int] = []

    def first(k: int) -> int:
        first_done.append(k)
        return k

    def second(k: int) -> None:
        release.wait(WAIT_S)
        outputs.append(k)

    runner = TwoStageRunner(first, second)
    try:
        for k in range(50):
            runner.put(k)
            time.sleep(0.001)
        assert _wait_until(lambda: len(first_done) >= 3)
        time.sleep(0.05)  # room for a fourth to be (wrongly) taken
        assert len(first_done) == 3 and outputs == []
        runner.put(1000)  # the newest input (replacing any still waiting)
        release.set()
        assert _wait_until(lambda: len(outputs) == 4)  # the three, then the newest input
        assert outputs[:3] == first_done[:3] and outputs[3] == 1000
        time.sleep(0.05)
        assert len(outputs) == 4
    finally:
        runner.close()


def test_a_failing_stage_is_reported_and_the_runner_goes_on() -> None:
    errors: list[tuple[str, Any, str]] = []
    outputs: list[int] = []

    def first(k: int) -> int:
        if k == 1:
            raise RuntimeError("network failed")
        return k

    def second(k: int) -> None:
        if k == 2:
            raise ValueError("publish failed")
        outputs.append(k)

    runner = TwoStageRunner(first, second,
                            lambda stage, item, exc: errors.append((stage, item, str(exc))))
    try:
        for k in range(4):
            runner.put(k)
            assert _wait_until(lambda n=k + 1: len(outputs) + len(errors) == n)
        assert outputs == [0, 3]
        assert errors == [("first", 1, "network failed"), ("second", 2, "publish failed")]
        assert runner.is_alive()
        with pytest.raises(ValueError, match="needs an item"):
            runner.put(None)
    finally:
        runner.close()


def test_wait_idle_returns_once_stage_two_has_finished() -> None:
    release, busy = threading.Event(), threading.Event()
    outputs: list[int] = []
    runner = TwoStageRunner(lambda k: k, lambda k: (busy.set(), release.wait(WAIT_S),
                                                     outputs.append(k)))
    try:
        runner.put(7)
        assert busy.wait(WAIT_S)
        assert runner.wait_idle(timeout=0.05) is False  # stage two still holds 7
        release.set()
        assert runner.wait_idle(timeout=WAIT_S) is True and outputs == [7]
    finally:
        runner.close()
    assert runner.wait_idle(timeout=0.01) is False  # closed


def test_the_pipeline_halves_overlapped_give_what_process_gives() -> None:
    """The node's arrangement: `Pipeline.infer` in stage one, `finish` in stage two. With
    every set waiting for its turn (no superseding), the results equal sequential
    `process` calls, in order, and the halves ran at the same time."""
    from test_pipeline import TINY, feed, make

    from depth_any_view.data.synth import generate_frames
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine

    def engine() -> InferenceEngine:
        return InferenceEngine(EngineConfig(random_init=True, model_overrides=dict(TINY),
                                            device="cpu", warmup_iters=0, threads=1,
                                            return_images=True))

    frames = list(generate_frames(frames=4, size=(48, 48), seed=4, scene="indoor",
                                  grid_dims=16))
    pipe = make(engine())
    want = [pipe.process(feed(pipe, f)[0]) for f in frames]

    pipe = make(engine())
    sets = [feed(pipe, f)[0] for f in frames]
    got: list[Any] = []
    finished = threading.Event()
    infer_started = [threading.Event() for _ in frames]
    overlapped: list[int] = []

    def first(k: int) -> Any:
        infer_started[k].set()
        return k, pipe.infer(sets[k])

    def second(item: Any) -> None:
        k, inferred = item
        if k + 1 < len(sets):
            runner.put(k + 1)  # the next set enters while this one is finished
            if infer_started[k + 1].wait(WAIT_S):
                overlapped.append(k)
        got.append(pipe.finish(inferred))
        if len(got) == len(sets):
            finished.set()

    runner = TwoStageRunner(first, second)
    try:
        runner.put(0)
        assert finished.wait(WAIT_S * len(sets))
    finally:
        runner.close()
    assert overlapped == list(range(len(sets) - 1))
    assert [r.stamp_ns for r in got] == [r.stamp_ns for r in want]
    for a, b in zip(got, want):
        assert a.ok and b.ok and a.fusion.accepted and b.fusion.accepted
        for name in b.cameras:
            np.testing.assert_array_equal(a.cameras[name].depth, b.cameras[name].depth)
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.voxels, b.voxels)
        np.testing.assert_array_equal(a.grid2d.data, b.grid2d.data)
    assert pipe.stats()["sets"]["processed"] == len(sets)
