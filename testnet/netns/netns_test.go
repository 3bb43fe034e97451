// Package netns holds the multi-host tests of zopeer's network layer: hosts
// are network namespaces joined by veth pairs on a bridge, links shaped with
// tc tbf, NAT routers doing MASQUERADE with nftables. The test creates and
// removes everything itself; no namespace has a route out of the machine.
//
// Run as root (CI: .ci/run):
//
//	ZOPEER_NETNS=1 go test -count=1 -v -timeout 15m ./testnet/netns/
//	ZOPEER_NETNS_BENCH=1 go test -count=1 -v -run WireBytes -timeout 15m ./testnet/netns/
package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pubNet is the "internet" of the test: addresses libp2p treats as public,
// used only inside the test's namespaces (which have no route out).
const pubNet = "7.0.0"

type lab struct {
	t     *testing.T
	tag   string
	nss   []string
	procs []*proc
	bin   string
	dir   string
	rate  string // tbf rate of every host link, e.g. "4mbit"
}

type proc struct {
	name, ns, status, key string
	args                  []string
	cmd                   *exec.Cmd
}

type status struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	Updates   uint64   `json:"updates"`
	Published uint64   `json:"published_batches"`
	Digest    string   `json:"digest"`
	RunPeers  int      `json:"run_peers"`
	Net       struct {
		Reachability string   `json:"reachability"`
		Relays       []string `json:"relay_reservations"`
		RelayService bool     `json:"relay_service"`
		HolePunch    struct {
			Started, Succeeded, Failed uint64
			LastError                  string `json:"last_error"`
		} `json:"hole_punch"`
		Conns []struct {
			Peer    string `json:"peer"`
			Addr    string `json:"addr"`
			Relayed bool   `json:"relayed"`
			Run     string `json:"run"`
		} `json:"connections"`
	} `json:"net"`
}

func need(t *testing.T, env string) {
	t.Helper()
	if testing.Short() || os.Getenv(env) == "" {
		t.Skipf("multi-host network test: set %s=1 and run as root (not with -short)", env)
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("multi-host network test: needs root on Linux (network namespaces)")
	}
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("multi-host network test: no %s (apt-get install iproute2 nftables)", tool)
		}
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		t.Skipf("multi-host network test: ip netns unavailable: %v %s", err, out)
	}
}

func newLab(t *testing.T, rate string) *lab {
	l := &lab{t: t, tag: fmt.Sprintf("zn%d", os.Getpid()%100000), dir: t.TempDir(), rate: rate}
	if d := os.Getenv("ZOPEER_NETNS_DIR"); d != "" { // keep the logs and status files
		l.dir = d
		os.MkdirAll(d, 0o755)
	}
	l.bin = filepath.Join(l.dir, "p2pnode")
	root, _ := filepath.Abs("../..")
	build := exec.Command("go", "build", "-o", l.bin, "./testnet/cmd/p2pnode")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build p2pnode: %v\n%s", err, out)
	}
	t.Cleanup(l.close)
	l.addNS("core")
	l.ip("core", "link", "add", "br0", "type", "bridge")
	l.ip("core", "link", "set", "br0", "up")
	return l
}

func (l *lab) nsName(n string) string { return l.tag + "-" + n }

func (l *lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *lab) ip(ns string, args ...string) string {
	return l.run(append([]string{"ip", "-n", l.nsName(ns)}, args...)...)
}

func (l *lab) exec(ns string, args ...string) string {
	return l.run(append([]string{"ip", "netns", "exec", l.nsName(ns)}, args...)...)
}

func (l *lab) addNS(n string) {
	l.run("ip", "netns", "add", l.nsName(n))
	l.nss = append(l.nss, l.nsName(n))
	l.ip(n, "link", "set", "lo", "up")
}

// shape limits egress of dev in ns to the lab's rate.
func (l *lab) shape(ns, dev string) {
	if l.rate == "" {
		return
	}
	l.run("tc", "-n", l.nsName(ns), "qdisc", "add", "dev", dev, "root", "tbf", "rate", l.rate, "burst", "16kb", "latency", "200ms")
}

// public adds a host on the bridge with address pubNet.octet.
func (l *lab) public(name string, octet int) {
	l.addNS(name)
	l.run("ip", "link", "add", "v-"+name, "netns", l.nsName("core"), "type", "veth", "peer", "name", "eth0", "netns", l.nsName(name))
	l.ip("core", "link", "set", "v-"+name, "master", "br0", "up")
	l.ip(name, "addr", "add", fmt.Sprintf("%s.%d/24", pubNet, octet), "dev", "eth0")
	l.ip(name, "link", "set", "eth0", "up")
	l.shape(name, "eth0")
	l.shape("core", "v-"+name)
}

// natted adds a router (public address pubNet.octet, MASQUERADE) and a host
// behind it on 192.168.k.0/24.
//
// masq is appended to the MASQUERADE rule: "" maps a host's port to the
// same public port whatever the destination while it is free (Linux keeps
// the source port: endpoint-independent mapping in practice, which hole
// punching needs); " random" picks a random port per connection (a
// symmetric NAT: hole punching cannot work, the peer stays relayed).
func (l *lab) natted(name, router string, octet, k int, masq string) {
	l.public(router, octet)
	l.addNS(name)
	l.run("ip", "link", "add", "lan", "netns", l.nsName(router), "type", "veth", "peer", "name", "eth0", "netns", l.nsName(name))
	l.ip(router, "addr", "add", fmt.Sprintf("192.168.%d.1/24", k), "dev", "lan")
	l.ip(router, "link", "set", "lan", "up")
	l.ip(name, "addr", "add", fmt.Sprintf("192.168.%d.2/24", k), "dev", "eth0")
	l.ip(name, "link", "set", "eth0", "up")
	l.ip(name, "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", k))
	l.exec(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.exec(router, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100 ; } ; add rule ip nat post oifname eth0 masquerade"+masq)
	// A home router's firewall: nothing from the WAN side starts a
	// connection to the router itself. Without it, a hole-punch packet that
	// reaches the router before its own host's packet has left leaves a
	// conntrack entry for the router's own port, and the host's packet is
	// then mapped to another port, which the remote side does not expect.
	l.exec(router, "nft", "add table ip fw; add chain ip fw in { type filter hook input priority 0 ; } ; add rule ip fw in iifname eth0 ct state new drop")
}

func (l *lab) start(name, ns string, args ...string) *proc {
	p := &proc{name: name, ns: ns, status: filepath.Join(l.dir, name+".json"), key: filepath.Join(l.dir, name+".key"), args: args}
	l.procs = append(l.procs, p)
	l.launch(p)
	return p
}

func (l *lab) launch(p *proc) {
	os.Remove(p.status)
	args := append([]string{"netns", "exec", l.nsName(p.ns), l.bin, "--key", p.key, "--status", p.status,
		"--listen", "/ip4/0.0.0.0/tcp/4747,/ip4/0.0.0.0/udp/4747/quic-v1"}, p.args...)
	p.cmd = exec.Command("ip", args...)
	logf, err := os.Create(filepath.Join(l.dir, p.name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) kill(p *proc) {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		p.cmd = nil
	}
}

func (l *lab) close() {
	for _, p := range l.procs {
		l.kill(p)
	}
	if l.t.Failed() || os.Getenv("ZOPEER_NETNS_LOGS") != "" {
		for _, p := range l.procs {
			b, _ := os.ReadFile(filepath.Join(l.dir, p.name+".log"))
			s := string(b)
			if len(s) > 3000 {
				s = s[len(s)-3000:]
			}
			l.t.Logf("--- %s log (tail) ---\n%s", p.name, s)
		}
	}
	for i := len(l.nss) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", l.nss[i]).Run()
	}
}

func (l *lab) status(p *proc) (status, bool) {
	var st status
	b, err := os.ReadFile(p.status)
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

func (l *lab) addr(p *proc, octet int) string {
	for i := 0; i < 100; i++ {
		if st, ok := l.status(p); ok && st.ID != "" {
			return fmt.Sprintf("/ip4/%s.%d/tcp/4747/p2p/%s", pubNet, octet, st.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("%s wrote no status", p.name)
	return ""
}

// linkBytes returns rx and tx bytes of eth0 in ns (every byte on the link:
// Ethernet, IP and TCP/UDP headers included).
func (l *lab) linkBytes(ns string) (rx, tx uint64) {
	out := l.exec(ns, "cat", "/sys/class/net/eth0/statistics/rx_bytes", "/sys/class/net/eth0/statistics/tx_bytes")
	f := strings.Fields(out)
	rx, _ = strconv.ParseUint(f[0], 10, 64)
	tx, _ = strconv.ParseUint(f[1], 10, 64)
	return
}

// TestNATMesh: a public bootstrap/relay host, three public peers and three
// peers each behind its own NAT router, on shaped links. n1 and n2 sit
// behind port-preserving NATs with a home router's firewall, n3 behind a
// NAT that maps every connection to a random port (symmetric). Every NATed
// peer gets relay reservations and all exchange updates; n1 and n2 turn
// their relayed connection into a direct one by hole punching, n3 never
// gets a direct connection to another NATed peer. The bootstrap host is
// killed 5 s after start and the others still form one mesh, and a
// partition of n1 heals to identical digests.
func TestNATMesh(t *testing.T) {
	need(t, "ZOPEER_NETNS")
	l := newLab(t, "4mbit")
	l.public("boot", 1)
	for i := 1; i <= 3; i++ {
		l.public(fmt.Sprintf("p%d", i), 10+i)
	}
	l.natted("n1", "r1", 21, 1, "")
	l.natted("n2", "r2", 22, 2, "")
	l.natted("n3", "r3", 23, 3, " random")

	const batches, size = 50, 16
	boot := l.start("boot", "boot", "--dht-server")
	bootAddr := l.addr(boot, 1)
	pub := []string{"--bootstrap", bootAddr, "--batches", strconv.Itoa(batches), "--batch", strconv.Itoa(size),
		"--publish-after", "2s", "--sync-every", "2s", "--state-every", "2s"}
	var peers []*proc
	for i := 1; i <= 3; i++ {
		peers = append(peers, l.start(fmt.Sprintf("p%d", i), fmt.Sprintf("p%d", i), pub...))
	}
	nat := []*proc{l.start("n1", "n1", pub...), l.start("n2", "n2", pub...), l.start("n3", "n3", pub...)}
	peers = append(peers, nat...)
	time.Sleep(5 * time.Second)
	l.kill(boot)
	t.Log("bootstrap host killed 5 s after start")

	start := time.Now()
	ids := map[string]string{} // peer ID -> name
	reserved := map[string]bool{}
	// conn[a+b]: a saw a connection to b, relayed or direct.
	relayed, direct := map[string]bool{}, map[string]bool{}
	watch := func() {
		for _, p := range peers {
			if st, ok := l.status(p); ok {
				ids[st.ID] = p.name
			}
		}
		for _, n := range nat {
			st, ok := l.status(n)
			if !ok {
				continue
			}
			if len(st.Net.Relays) > 0 && !reserved[n.name] {
				reserved[n.name] = true
				t.Logf("%s holds a relay reservation (at %v)", n.name, time.Since(start).Round(time.Second))
			}
			for _, c := range st.Net.Conns {
				if o := ids[c.Peer]; strings.HasPrefix(o, "n") {
					if c.Relayed {
						relayed[n.name+o] = true
					} else {
						direct[n.name+o] = true
					}
				}
			}
		}
	}
	punched := func() (ok uint64) {
		for _, n := range nat[:2] {
			st, _ := l.status(n)
			ok += st.Net.HolePunch.Succeeded
		}
		return
	}
	partitioned := false
	var sameAt, punchedAt time.Duration // when the digests first agreed, when n1-n2 first punched
	want := uint64(len(peers) * batches * size)
	deadline := time.Now().Add(4 * time.Minute)
	for {
		watch()
		// A partition: n1's router loses its uplink for 15 s mid-run.
		if !partitioned && time.Since(start) > 15*time.Second {
			l.ip("core", "link", "set", "v-r1", "down")
			t.Log("partition: n1 cut off")
			time.Sleep(15 * time.Second)
			l.ip("core", "link", "set", "v-r1", "up")
			t.Log("partition healed")
			partitioned = true
		}
		var sts []status
		for _, p := range peers {
			st, _ := l.status(p)
			sts = append(sts, st)
		}
		same := partitioned
		for _, st := range sts {
			same = same && st.Updates == want && st.Digest == sts[0].Digest
		}
		punchedN12 := (direct["n1n2"] || direct["n2n1"]) && punched() > 0
		if same && sameAt == 0 {
			sameAt = time.Since(start)
		}
		if punchedN12 && punchedAt == 0 {
			punchedAt = time.Since(start)
		}
		if same && reserved["n1"] && reserved["n2"] && reserved["n3"] && punchedN12 {
			break
		}
		if time.Now().After(deadline) {
			for i, st := range sts {
				t.Logf("%s: updates %d/%d digest %.16s run peers %d reach %s relays %v hole punches %+v", peers[i].name, st.Updates, want,
					st.Digest, st.RunPeers, st.Net.Reachability, st.Net.Relays, st.Net.HolePunch)
			}
			t.Fatalf("not converged in time (identical digests %v): reservations %v, NATed pairs relayed %v direct %v, hole punches that succeeded (n1, n2) %d",
				same, reserved, relayed, direct, punched())
		}
		time.Sleep(time.Second)
	}
	t.Logf("done in %v: %d peers hold %d updates with identical digests (at %v), n1-n2 hole punched (at %v)", time.Since(start).Round(time.Second),
		len(peers), want, sameAt.Round(time.Second), punchedAt.Round(time.Second))
	t.Logf("relay reservations %v; NATed pairs seen relayed %v, direct %v", reserved, relayed, direct)
	for _, p := range peers {
		st, _ := l.status(p)
		t.Logf("%s: reachability %s, relay service %v, relays %v, hole punches %+v", p.name, st.Net.Reachability, st.Net.RelayService, st.Net.Relays, st.Net.HolePunch)
	}
	// n3's NAT picks a new port per connection: no hole punch can work.
	for _, k := range []string{"n3n1", "n3n2", "n1n3", "n2n3"} {
		if direct[k] {
			t.Errorf("%s: a direct connection through the symmetric NAT", k)
		}
	}
}

func envDur(k string, d time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return v
	}
	return d
}

func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}
