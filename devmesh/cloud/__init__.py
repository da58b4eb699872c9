"""A cloud of five hosts on this one machine, each a network namespace of
the LAN (`lan.py`) with an address of its own and a host name of its own (a
UTS namespace), each running its share of the mesh with the launcher, from
its own host config and certificates, one role per process as systemd runs
a real host (`ip netns exec <ns> unshare --uts … python -m launcher
--config <host>/host.toml --role <role>`):

| host | address     | runs |
|------|-------------|------|
| cp1  | 10.213.0.11 | etcd member, eventlog, scheduler, api, gateway |
| cp2  | 10.213.0.12 | etcd member, eventlog, scheduler, api, gateway |
| cp3  | 10.213.0.13 | etcd member, eventlog, scheduler, api, gateway |
| hv1  | 10.213.0.21 | node agent |
| hv2  | 10.213.0.22 | node agent |

The three members make one etcd cluster, and every service is given all
three endpoints: a control-plane host's services try its own member first;
the hypervisors try cp3's first, so that losing cp3 makes their node agents
fail over as well as the cluster. Every gateway balances over the three
apis. The three schedulers elect a leader on etcd; the apis and node agents
call the one the leader key names (cp1's when none does, their `[mesh]
scheduler`). The three eventlog replicas share one PostgreSQL database, on
a server in the root namespace listening at its LAN address (as the image
server does; a throwaway cluster, `devmesh/postgres.py`, standing for the
operator's own, which no host's loss takes down); every service's emitter
and the apis' event reads balance over the three, and move to another when
theirs is lost (round robin puts each emitter's stream on one of the three,
so which move when cp3 is lost varies from run to run). Everything speaks
TLS with certificates of one CA (`ca/`, made by `launcher.ca`), but for
PostgreSQL (plaintext, trusting the LAN): each host's in `<host>/tls`, its
`[tls] dir`; the tests' own (`operator/`, an etcd client certificate, as an
operator's `etcdctl` holds) and the CA's certificate, which REST clients
trust.

Why one process per role rather than one launcher per host: a rolling
restart stops and starts one role of one host (`CloudHost.restart`), as
`systemctl restart sfmesh-api` does on a real host; a host launcher stops
the whole host when one of its children exits, by design.

**What a hypervisor host really is.** Its node agent runs inside the host's
namespace: its gRPC listener, its etcd, scheduler, eventlog and api
clients, and its image downloads (from the image server at the root
namespace's address) all go over the LAN from the host's own address. But
libvirt is one daemon in the root namespace, reached over its unix socket
(the file system is shared), so both node agents drive the same libvirtd,
their domains are qemu processes of the root namespace, and each node
reports this whole machine's CPUs and memory as its own. Instances without
networks boot; a network would not work, as the node agent makes its
bridges, VXLAN and dnsmasq in the host's namespace while libvirt attaches
domains in the root one (tests/e2e/test_overlay.py runs node agents in the
root namespace with only their underlay in a namespace for that).

`layout.py` says who runs what where and writes each host's config (pure),
`hosts.py` runs one host's roles, `cloud.py` the five hosts and their
clients, `etcd_leader.py` moves etcd's lead. The multi-host tests
(`tests/multihost/`) and `bench/failover.py` use it.
"""
