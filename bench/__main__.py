"""`make bench`: run every benchmark and print its figures."""

from __future__ import annotations

from bench import gateway


def main() -> None:
    """Run the benchmarks in turn."""
    gateway.main()


if __name__ == "__main__":
    main()
