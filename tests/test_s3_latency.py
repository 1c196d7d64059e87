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


def test_the_proxy_in_a_process_of_its_own_counts_resets_and_stops(s3_uri, s3_server):
    """What benchmarks use, so that the reader measured keeps its interpreter to itself."""
    from s3_latency import ProxyProcess

    with ProxyProcess(s3_server, delay_ms=20) as proxy:
        root = locate(s3_uri.replace(s3_server, proxy.address))
        (root / "a.bin").write_bytes(b"y" * 1000)
        proxy.reset()
        assert proxy.total == 0
        start = time.perf_counter()
        assert (root / "a.bin").read_bytes() == b"y" * 1000
        assert time.perf_counter() - start >= 0.02
        assert proxy.requests["GET"] >= 1 and proxy.most_in_flight >= 1
    assert proxy.process.returncode is not None
