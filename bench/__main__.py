"""`make bench`: run every benchmark and print its figures."""

from __future__ import annotations

from bench import thin_path


def main() -> None:
    """Run the benchmarks in turn."""
    thin_path.main()


if __name__ == "__main__":
    main()
