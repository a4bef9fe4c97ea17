"""The compute loop alone (pipeline.project_windows) with a stand-in projector."""

import numpy as np
import pytest

from flowtrace_gpu.engine.pipeline import FrameReadError, blocks, numbered, project_windows


class SumProjector:
    """Image of a window: the sum of its frames (numbers stand for frames)."""

    def __init__(self, f, batch=1):
        self.f, self.batch, self.frames, self.log = f, batch, [], []

    def push(self, frame):
        self.frames.append(frame)
        self.log.append(("push", frame))

    def push_many(self, frames):
        self.frames.extend(frames)
        self.log.append(("push", tuple(frames)))

    def project(self):
        self.log.append(("project",))
        return sum(self.frames[-self.f:])

    def project_many(self, n):
        self.log.append(("project", n))
        ends = range(len(self.frames) - n + 1, len(self.frames) + 1)
        return np.array([sum(self.frames[e - self.f:e]) for e in ends])


def expected(n, f, first=0):
    return {first + i: sum(range(i, i + f)) for i in range(n - f + 1)}


def collect(result):
    images = {}
    for index, image, many in result:
        if many:
            images.update({index + k: int(v) for k, v in enumerate(image)})
        else:
            images[index] = int(image)
    return images


@pytest.mark.parametrize("batch", [1, 2, 4, 7])
@pytest.mark.parametrize("n, f", [(10, 3), (5, 5), (12, 1)])
def test_every_window_once_in_order(n, f, batch):
    projector = SumProjector(f, batch)
    first = f - 1 if batch > 1 else 1
    got = collect(project_windows(blocks(range(n), first, batch), projector, f, batch, first_index=7))
    assert got == expected(n, f, first=7)


def test_images_come_one_block_late():
    projector = SumProjector(2)
    loop = project_windows(blocks(range(4), 1, 1), projector, 2, 1)
    index, _, _ = next(loop)
    assert index == 0
    # window 0 (frames 0, 1) is handed over only after frame 2 was pushed
    assert projector.log[-1] == ("push", 2)


def test_images_before_an_unreadable_frame_come_first():
    def frames():
        yield from range(6)
        raise OSError("truncated frame")

    projector = SumProjector(3)
    got = {}
    with pytest.raises(FrameReadError) as info:
        for index, image, _ in project_windows(blocks(numbered(frames()), 1, 1), projector, 3, 1):
            got[index] = int(image)
    assert info.value.position == 6
    assert got == expected(6, 3)
