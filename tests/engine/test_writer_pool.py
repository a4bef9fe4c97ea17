"""The writer pool alone: order, backlog, keep, errors and abort."""

import threading
import time

import numpy as np
import pytest

from flowtrace_gpu.engine.writer_pool import WriterPool


class Recorder:
    parallel = True

    def __init__(self, fail_at=None, delay=0.0):
        self.written = {}
        self.aborted = False
        self.fail_at = fail_at
        self.delay = delay
        self.threads = set()
        self._lock = threading.Lock()

    def write(self, index, image):
        time.sleep(self.delay)
        if index == self.fail_at:
            raise OSError(f"disk full at {index}")
        with self._lock:
            self.written[index] = image
            self.threads.add(threading.current_thread().name)

    def abort(self):
        self.aborted = True


@pytest.mark.parametrize("n_writers", [0, 1, 3])
def test_every_image_written_once_after_drain(n_writers):
    writer = Recorder(delay=0.002)
    pool = WriterPool(writer, n_writers, max_backlog=2, progress=True, n_outputs=20)
    for i in range(20):
        pool.submit(i, np.full(4, i))
    pool.drain()
    pool.close()
    assert sorted(writer.written) == list(range(20))
    assert all(int(writer.written[i][0]) == i for i in range(20))
    assert pool.bar.n == 20
    on_threads = all(name.startswith("flowtrace-writer") for name in writer.threads)
    assert on_threads == (n_writers > 0)


def test_backlog_is_bounded():
    gate = threading.Event()

    class Blocked(Recorder):
        def write(self, index, image):
            gate.wait(5)
            super().write(index, image)

    writer = Blocked()
    pool = WriterPool(writer, 1, max_backlog=3)
    submitted = []

    def produce():
        for i in range(10):
            pool.submit(i, i)
            submitted.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.3)
    # One image on the writer thread blocks; the producer waits with 3 + 1 in flight.
    assert len(submitted) == 3
    gate.set()
    producer.join(5)
    pool.drain()
    pool.close()
    assert len(writer.written) == 10


def test_keep_writes_only_kept_images_and_downloads_only_when_needed():
    writer = Recorder()
    downloads = []
    pool = WriterPool(writer, 2, keep={1, 5, 6}, max_backlog=4, progress=True, n_outputs=10)

    def to_host(images):
        downloads.append(len(images))
        return images

    pool.put(0, np.zeros((4, 2)), True, to_host)   # images 0-3: only 1 kept
    pool.put(4, np.ones((2, 2)), True, to_host)    # images 4-5: 5 kept
    pool.put(6, np.ones(2), False, to_host)        # image 6 kept
    pool.put(7, np.ones((3, 2)), True, to_host)    # 7-9: none kept, no download
    pool.drain()
    pool.close()
    assert sorted(writer.written) == [1, 5, 6]
    assert downloads == [4, 2, 2]
    assert pool.bar.n == 10


def test_writer_error_surfaces_and_abort_undoes():
    writer = Recorder(fail_at=3)
    pool = WriterPool(writer, 2, max_backlog=2)
    with pytest.raises(OSError, match="disk full at 3"):
        for i in range(10):
            pool.submit(i, i)
        pool.drain()
    pool.abort()
    pool.close()
    assert writer.aborted
    assert 3 not in writer.written
