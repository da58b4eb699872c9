"""Unit tests of services/node_agent/facts.py and the pure parts of reporter.py."""

from __future__ import annotations

import pytest

from services.node_agent import facts, reporter

MEMINFO = """\
MemTotal:       16384000 kB
MemFree:         1024000 kB
MemAvailable:    8192000 kB
Buffers:          204800 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

MEMINFO_OLD_KERNEL = """\
MemTotal:        2097152 kB
MemFree:         1048576 kB
"""

CPUINFO_AMD = """\
processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep svm extapic cr8_legacy
bogomips\t: 5988.74

processor\t: 1
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep svm extapic cr8_legacy
"""

CPUINFO_INTEL = "processor\t: 0\nflags\t\t: fpu vme ssse3 vmx smx est tm2\n"

# This machine: /dev/kvm from kvm_pvm, no hardware flag.
CPUINFO_NO_HW = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov hypervisor\n"
    "model name\t: AMD EPYC (with svm in its name is not a flag)\n"
)

LOADAVG = "0.42 0.30 0.15 2/345 12345\n"


def test_meminfo_gives_total_and_available_in_mib() -> None:
    assert facts.parse_meminfo(MEMINFO) == (16000, 8000)


def test_meminfo_without_memavailable_falls_back_to_memfree() -> None:
    assert facts.parse_meminfo(MEMINFO_OLD_KERNEL) == (2048, 1024)


def test_meminfo_without_total_is_refused() -> None:
    with pytest.raises(ValueError):
        facts.parse_meminfo("MemFree: 10 kB\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(CPUINFO_AMD, True), (CPUINFO_INTEL, True), (CPUINFO_NO_HW, False), ("", False)],
)
def test_cpuinfo_flags_look_for_vmx_or_svm_in_flags_only(text: str, expected: bool) -> None:
    assert facts.parse_cpuinfo_flags(text) is expected


def test_cpuinfo_flag_must_be_a_whole_word() -> None:
    assert facts.parse_cpuinfo_flags("flags\t: vmxnet svmx\n") is False


def test_loadavg_gives_the_three_averages() -> None:
    assert facts.parse_loadavg(LOADAVG) == pytest.approx((0.42, 0.30, 0.15))


@pytest.mark.parametrize("text", ["", "0.42 0.30"])
def test_short_loadavg_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        facts.parse_loadavg(text)


@pytest.mark.parametrize(
    ("dev_kvm", "flags", "forced", "expected"),
    [
        (True, True, None, "kvm"),
        (True, True, "auto", "kvm"),
        (True, False, None, "qemu"),  # this machine: /dev/kvm is not hardware KVM
        (False, True, None, "qemu"),
        (False, False, "auto", "qemu"),
        (False, False, "kvm", "kvm"),
        (True, True, "qemu", "qemu"),
    ],
)
def test_choose_virt_type(dev_kvm: bool, flags: bool, forced: str | None, expected: str) -> None:
    assert facts.choose_virt_type(dev_kvm, flags, forced) == expected


def test_unknown_virt_type_is_refused() -> None:
    with pytest.raises(ValueError, match="xen"):
        facts.choose_virt_type(True, True, "xen")


def test_backoff_doubles_from_a_fifth_of_a_second_to_five() -> None:
    waits = [reporter.BACKOFF_INITIAL]
    for _ in range(6):
        waits.append(reporter.next_backoff(waits[-1]))
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_report_interval_follows_the_answer_with_a_default_for_zero() -> None:
    assert reporter.report_interval(3) == 3.0
    assert reporter.report_interval(0) == reporter.DEFAULT_INTERVAL
    assert reporter.report_interval(-1) == reporter.DEFAULT_INTERVAL


def test_request_carries_facts_only_when_given() -> None:
    capacity = facts.Capacity(
        cpus_total=8,
        cpus_used=0,
        memory_total_mib=16000,
        memory_free_mib=8000,
        disk_free_gib=50,
        load_1m=0.5,
        instance_uuids=("u1",),
        load_5m=0.25,
        load_15m=0.125,
        instances_active=1,
    )
    host = facts.HostFacts(node="n1", address="127.0.0.1:13020", kvm=False)
    first = reporter.to_request(capacity, host)
    assert first.HasField("facts")
    assert (first.facts.node, first.facts.address, first.facts.kvm) == (
        "n1",
        "127.0.0.1:13020",
        False,
    )
    assert (first.cpus_total, first.memory_free_mib, first.disk_free_gib) == (8, 8000, 50)
    assert list(first.instance_uuids) == ["u1"]
    assert (first.load_5m, first.load_15m, first.instances_active) == (0.25, 0.125, 1)
    assert not reporter.to_request(capacity, None).HasField("facts")
