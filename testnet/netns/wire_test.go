package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trafficStatus is the part of p2pnode's status file the byte benchmark reads.
type trafficStatus struct {
	Updates uint64 `json:"updates"`
	Traffic struct {
		Streams map[string]flow `json:"streams"`
		Gossip  map[string]flow `json:"gossip"`
	} `json:"traffic"`
}

type flow struct {
	In       int64  `json:"in"`
	Out      int64  `json:"out"`
	ItemsIn  uint64 `json:"items_in"`
	ItemsOut uint64 `json:"items_out"`
}

// hostBytes is what one host received, at each level.
type hostBytes struct {
	linkBytes, linkPkts uint64            // eth0 rx: Ethernet frames
	tcp, udp, acks      [2]uint64         // nft input counters: packets, IP bytes; acks: TCP packets without payload
	syns, bigUDP        [2]uint64         // TCP SYNs (connections opened), UDP packets of 1200 bytes or more (QUIC handshakes, MTU probes)
	streams, gossip     map[string]int64  // stream payload per protocol, gossip parts (in)
	items               map[string]uint64 // gossip items received per part
}

// account adds nftables input counters to host ns: TCP, UDP, TCP packets
// carrying no payload (pure ACKs: an IP length of 52 with timestamps), TCP
// SYNs, and UDP packets of 1200 bytes or more (QUIC pads its handshake's
// first packets to 1200; MTU probes are large too).
func (l *lab) account(ns string) {
	l.exec(ns, "nft", "add table inet acct; add chain inet acct in { type filter hook input priority 0 ; } ; "+
		"add rule inet acct in meta l4proto tcp counter ; add rule inet acct in meta l4proto udp counter ; "+
		"add rule inet acct in meta l4proto tcp ip length <= 52 counter ; add rule inet acct in tcp flags & (syn|ack) == syn counter ; "+
		"add rule inet acct in meta l4proto udp ip length >= 1200 counter")
}

var nftCounter = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

func (l *lab) snapshot(ns string, p *proc) hostBytes {
	var h hostBytes
	out := l.exec(ns, "cat", "/sys/class/net/eth0/statistics/rx_bytes", "/sys/class/net/eth0/statistics/rx_packets")
	f := strings.Fields(out)
	h.linkBytes, _ = strconv.ParseUint(f[0], 10, 64)
	h.linkPkts, _ = strconv.ParseUint(f[1], 10, 64)
	m := nftCounter.FindAllStringSubmatch(l.exec(ns, "nft", "list", "table", "inet", "acct"), -1)
	for i, dst := range []*[2]uint64{&h.tcp, &h.udp, &h.acks, &h.syns, &h.bigUDP} {
		if i < len(m) {
			dst[0], _ = strconv.ParseUint(m[i][1], 10, 64)
			dst[1], _ = strconv.ParseUint(m[i][2], 10, 64)
		}
	}
	h.streams, h.gossip, h.items = map[string]int64{}, map[string]int64{}, map[string]uint64{}
	var st trafficStatus
	if b, err := os.ReadFile(p.status); err == nil && json.Unmarshal(b, &st) == nil {
		for k, v := range st.Traffic.Streams {
			h.streams[k] = v.In
		}
		for k, v := range st.Traffic.Gossip {
			h.gossip[k] = v.In
			h.items[k] = v.ItemsIn
		}
	}
	return h
}

// sub returns what all hosts received between a and b.
func sub(a, b []hostBytes) hostBytes {
	d := hostBytes{streams: map[string]int64{}, gossip: map[string]int64{}, items: map[string]uint64{}}
	for i := range a {
		d.linkBytes += b[i].linkBytes - a[i].linkBytes
		d.linkPkts += b[i].linkPkts - a[i].linkPkts
		for j := range 2 {
			d.tcp[j] += b[i].tcp[j] - a[i].tcp[j]
			d.udp[j] += b[i].udp[j] - a[i].udp[j]
			d.acks[j] += b[i].acks[j] - a[i].acks[j]
			d.syns[j] += b[i].syns[j] - a[i].syns[j]
			d.bigUDP[j] += b[i].bigUDP[j] - a[i].bigUDP[j]
		}
		for k, v := range b[i].streams {
			d.streams[k] += v - a[i].streams[k]
		}
		for k, v := range b[i].gossip {
			d.gossip[k] += v - a[i].gossip[k]
		}
		for k, v := range b[i].items {
			d.items[k] += v - a[i].items[k]
		}
	}
	return d
}

// report logs a breakdown of d divided by div (seconds × peers, or
// updates received), in unit.
func report(t *testing.T, what string, d hostBytes, div float64, unit string) {
	t.Logf("%s, in %s (everything received by all peers / %.1f):", what, unit, div)
	t.Logf("  link (Ethernet frames on eth0): %8.2f  (%.2f packets)", float64(d.linkBytes)/div, float64(d.linkPkts)/div)
	t.Logf("    TCP (IP bytes):               %8.2f  (%.2f packets, of which %.2f without payload = %.2f B)",
		float64(d.tcp[1])/div, float64(d.tcp[0])/div, float64(d.acks[0])/div, float64(d.acks[1])/div)
	t.Logf("    UDP (IP bytes: QUIC):         %8.2f  (%.2f packets, of which %.3f of 1200 bytes or more = %.2f B)",
		float64(d.udp[1])/div, float64(d.udp[0])/div, float64(d.bigUDP[0])/div, float64(d.bigUDP[1])/div)
	t.Logf("    TCP connections opened (SYNs): %.4f", float64(d.syns[0])/div)
	var total int64
	for _, v := range d.streams {
		total += v
	}
	t.Logf("  stream payload, all protocols:  %8.2f", float64(total)/div)
	for _, k := range sortedKeys(d.streams) {
		if d.streams[k] != 0 {
			t.Logf("    %-32s %8.2f", k, float64(d.streams[k])/div)
		}
	}
	t.Logf("  gossipsub RPC parts (protobuf):")
	for _, k := range sortedKeys(d.gossip) {
		if d.gossip[k] != 0 {
			t.Logf("    %-32s %8.2f  (%.3f items)", k, float64(d.gossip[k])/div, float64(d.items[k])/div)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestWireBytes measures the bytes a 6-peer run costs: every byte received
// on each host's veth (Ethernet, IP and TCP/UDP headers included), split by
// transport with nftables counters and, above the link, by libp2p protocol
// and gossipsub part (the peers' own counters). First idle (the background),
// then training at a chosen cadence: each peer makes one update every
// ZOPEER_BENCH_STEP (1.27 s: a GPT-2-small projected gradient,
// docs/BENCHMARKS.md) and publishes them ZOPEER_BENCH_BATCH at a time (64:
// zopeer's default --samples, one signed batch per step). It reports; it fails only if
// nothing was delivered. docs/BENCHMARKS.md has the figures and this command.
func TestWireBytes(t *testing.T) {
	need(t, "ZOPEER_NETNS_BENCH")
	settle := envDur("ZOPEER_BENCH_SETTLE", 5*time.Minute) // past start-up: AutoNAT probes, discovery backing off
	idle := envDur("ZOPEER_BENCH_IDLE", 120*time.Second)
	step := envDur("ZOPEER_BENCH_STEP", 1270*time.Millisecond)
	size := envInt("ZOPEER_BENCH_BATCH", 64) // zopeer's --samples: one signed batch per step
	batches := envInt("ZOPEER_BENCH_BATCHES", 3)
	extra := strings.Fields(os.Getenv("ZOPEER_BENCH_ARGS")) // p2pnode flags, e.g. --mesh-degree 6
	const n = 6
	every := time.Duration(size) * step
	l := newLab(t, "4mbit")
	for i := 1; i <= n; i++ {
		l.public(fmt.Sprintf("h%d", i), i)
		l.account(fmt.Sprintf("h%d", i))
	}
	common := append([]string{"--batches", strconv.Itoa(batches), "--batch", strconv.Itoa(size), "--publish-every", every.String(),
		"--publish-after", (settle + idle + 15*time.Second).String()}, extra...)
	first := l.start("h1", "h1", append([]string{"--dht-server"}, common...)...)
	boot := l.addr(first, 1)
	ps := []*proc{first}
	for i := 2; i <= n; i++ {
		ps = append(ps, l.start(fmt.Sprintf("h%d", i), fmt.Sprintf("h%d", i), append([]string{"--bootstrap", boot}, common...)...))
	}
	snap := func() []hostBytes {
		var s []hostBytes
		for i, p := range ps {
			s = append(s, l.snapshot(fmt.Sprintf("h%d", i+1), p))
		}
		return s
	}
	t.Logf("6 peers, links 4 Mbit/s (tbf); flags %v", common)
	time.Sleep(settle)
	s0 := snap()
	time.Sleep(idle)
	s1 := snap()
	di := sub(s0, s1)
	report(t, fmt.Sprintf("idle background over %v after %v to settle", idle, settle), di, idle.Seconds()*n, "bytes per second per peer")
	idleRate := float64(di.linkBytes) / idle.Seconds() / n
	// Training: until every peer holds every update.
	want := uint64(n * batches * size)
	startTrain := time.Now()
	deadline := startTrain.Add(time.Duration(batches)*every + 3*time.Minute)
	for {
		all := true
		for _, p := range ps {
			st, _ := l.status(p)
			all = all && st.Updates == want
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("updates not delivered in time")
		}
		time.Sleep(time.Second)
	}
	s2 := snap()
	trainSecs := time.Since(startTrain).Seconds()
	received := float64((n - 1) * batches * size * n) // updates received, all peers
	dt := sub(s1, s2)
	t.Logf("training: %d peers, one update per %v each, published %d per batch (every %v), %d batches each; %.0f s until all held everything",
		n, step, size, every, batches, trainSecs)
	report(t, "training, background included", dt, received, "bytes per received update")
	perUpdate := float64(dt.linkBytes) / received
	t.Logf("RESULT idle %.1f B/s per peer (goal <= 200); per received update %.2f B at the link, background included (goal <= 4); background share %.2f B",
		idleRate, perUpdate, idleRate*n*trainSecs/received)
}
