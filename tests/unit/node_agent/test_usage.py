"""services/node_agent/usage.py: bulk stats -> Shaken Fist's usage extra."""

from __future__ import annotations

from pathlib import Path

from services.node_agent.usage import guest_mac, read_tap_macs, taps, usage_extra

# What libvirt 9.0 / QEMU 7.2 answered here for a running domain with a
# qcow2 disk (virtio), a config drive and two NICs on a bridge.
STATS = {
    "state.state": 1,
    "state.reason": 1,
    "cpu.time": 352780000,
    "cpu.user": 260397000,
    "cpu.system": 92383000,
    "cpu.cache.monitor.count": 0,
    "cpu.haltpoll.success.time": 0,
    "cpu.haltpoll.fail.time": 0,
    "net.count": 2,
    "net.0.name": "vnet0",
    "net.0.rx.bytes": 90,
    "net.0.rx.pkts": 1,
    "net.0.rx.errs": 0,
    "net.0.rx.drop": 0,
    "net.0.tx.bytes": 0,
    "net.0.tx.pkts": 0,
    "net.0.tx.errs": 0,
    "net.0.tx.drop": 0,
    "net.1.name": "vnet1",
    "net.1.rx.bytes": 110,
    "net.1.rx.pkts": 1,
    "net.1.rx.errs": 0,
    "net.1.rx.drop": 2,
    "net.1.tx.bytes": 42,
    "net.1.tx.pkts": 3,
    "net.1.tx.errs": 0,
    "net.1.tx.drop": 0,
    "block.count": 2,
    "block.0.name": "vda",
    "block.0.path": "/srv/sfmesh/instances/u/vda.qcow2",
    "block.0.backingIndex": 1,
    "block.0.rd.reqs": 1,
    "block.0.rd.bytes": 512,
    "block.0.rd.times": 701172,
    "block.0.wr.reqs": 0,
    "block.0.wr.bytes": 0,
    "block.0.wr.times": 0,
    "block.0.fl.reqs": 0,
    "block.0.fl.times": 0,
    "block.0.allocation": 0,
    "block.0.capacity": 1073741824,
    "block.0.physical": 339968,
    "block.1.name": "vdb",
    "block.1.path": "/srv/sfmesh/instances/u/config.iso",
    "block.1.rd.reqs": 7,
    "block.1.rd.bytes": 28672,
    "block.1.wr.reqs": 0,
    "block.1.wr.bytes": 0,
    "block.1.physical": 376832,
    "block.1.capacity": 376832,
}
MACS = {"vnet0": "52:54:00:12:34:56", "vnet1": "02:00:00:ab:cd:ef"}


def test_the_extra_has_shaken_fists_keys_and_libvirts_counters() -> None:
    assert usage_extra(STATS, ["vda", "vdb"], MACS) == {
        "cpu usage": {
            "cpu time ns": 352780000,
            "system time ns": 92383000,
            "user time ns": 260397000,
        },
        "disk usage": {
            "vda": {
                "read requests": 1,
                "read bytes": 512,
                "write requests": 0,
                "write bytes": 0,
                "errors": -1,  # QEMU keeps no count
                "actual bytes on disk": 339968,
            },
            "vdb": {
                "read requests": 7,
                "read bytes": 28672,
                "write requests": 0,
                "write bytes": 0,
                "errors": -1,
                "actual bytes on disk": 376832,
            },
        },
        "network usage": {
            "52:54:00:12:34:56": {
                "read bytes": 90,
                "read packets": 1,
                "read errors": 0,
                "read drops": 0,
                "write bytes": 0,
                "write packets": 0,
                "write errors": 0,
                "write drops": 0,
            },
            "02:00:00:ab:cd:ef": {
                "read bytes": 110,
                "read packets": 1,
                "read errors": 0,
                "read drops": 2,
                "write bytes": 42,
                "write packets": 3,
                "write errors": 0,
                "write drops": 0,
            },
        },
    }


def test_disks_take_the_records_names_in_order() -> None:
    # An NVMe disk is vdX to libvirt and nvme0n1 to the guest and the record.
    extra = usage_extra(STATS, ["vda", "nvme0n1"], MACS)
    assert list(extra["disk usage"]) == ["vda", "nvme0n1"]
    assert extra["disk usage"]["nvme0n1"]["read bytes"] == 28672


def test_disks_keep_libvirts_names_when_the_record_lists_others() -> None:
    assert list(usage_extra(STATS, ["vda"], MACS)["disk usage"]) == ["vda", "vdb"]


def test_a_tap_without_a_known_mac_is_left_out() -> None:
    extra = usage_extra(STATS, ["vda", "vdb"], {"vnet1": "02:00:00:ab:cd:ef"})
    assert list(extra["network usage"]) == ["02:00:00:ab:cd:ef"]


def test_a_domain_without_devices_has_cpu_usage_only() -> None:
    bare = {"cpu.time": 5, "cpu.user": 3, "cpu.system": 2, "block.count": 0, "net.count": 0}
    extra = usage_extra(bare, [], {})
    assert extra == {
        "cpu usage": {"cpu time ns": 5, "system time ns": 2, "user time ns": 3},
        "disk usage": {},
        "network usage": {},
    }


def test_taps_are_named_in_libvirts_order() -> None:
    assert taps(STATS) == ["vnet0", "vnet1"]


def test_the_guest_mac_matches_its_tap_past_the_first_octet() -> None:
    nics = ["52:54:00:12:34:56", "02:00:00:AB:CD:EF"]
    assert guest_mac("fe:54:00:12:34:56", nics) == "52:54:00:12:34:56"
    assert guest_mac("fe:00:00:ab:cd:ef", nics) == "02:00:00:AB:CD:EF"
    assert guest_mac("fe:54:00:12:34:57", nics) is None


def test_tap_macs_come_from_sysfs_and_a_gone_tap_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "vnet0").mkdir()
    (tmp_path / "vnet0" / "address").write_text("fe:54:00:12:34:56\n")
    found = read_tap_macs(["vnet0", "vnet9", "../etc"], root=tmp_path)
    assert found == {"vnet0": "fe:54:00:12:34:56"}
