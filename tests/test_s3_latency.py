"""The latency proxy in front of the local S3 server: requests pass through whole, each delayed,
counted, with several in flight at once."""

import time
from concurrent.futures import ThreadPoolExecutor

from fmnist_ray.store.storage import locate


def test_latency_proxy_delays_counts_and_passes_requests_through(slow_s3):
    proxy, uri = slow_s3
    root = locate(uri)
    (root / "a.bin").write_bytes(b"x" * 100_000)
    proxy.reset()
    start = time.perf_counter()
    assert (root / "a.bin").read_bytes() == b"x" * 100_000
    assert time.perf_counter() - start >= 0.02
    assert proxy.total >= 1
    proxy.reset()
    with ThreadPoolExecutor(8) as pool:
        assert all(
            d == b"x" * 100_000
            for d in pool.map(lambda _: (root / "a.bin").read_bytes(), range(16))
        )
    assert proxy.most_in_flight > 1 and proxy.total >= 16
