package p2p

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
)

// countingProxy relays TCP connections to target and counts the bytes each
// way: everything libp2p puts on the wire (multistream, Noise, yamux, pubsub
// framing, identify, control messages), i.e. all but TCP/IP headers.
type countingProxy struct {
	ln       net.Listener
	target   string
	up, down atomic.Int64 // dialer → target, target → dialer
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newCountingProxy(t testing.TB, target string) *countingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *countingProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, &p.up)
		go p.pipe(c, s, &p.down)
	}
}

func (p *countingProxy) pipe(dst, src net.Conn, n *atomic.Int64) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkWireBytes publishes b.N batches of 64 projected gradients from one
// peer to another through a counting proxy and reports bytes per gradient and
// per message on the wire (all libp2p framing), at the libp2p stream level
// (bandwidth counter), and of the batch payload alone.
//
//	go test -run '^$' -bench BenchmarkWireBytes -benchtime 2000x ./p2p/
func BenchmarkWireBytes(b *testing.B) {
	const run, count = "bench", 64
	quiet := func(o *Options) { o.SyncInterval = time.Hour }
	recv := newTestPeer(b, run, quiet)
	pub := newTestPeer(b, run, quiet)
	var tcp string
	for _, a := range recv.host.Addrs() {
		if port, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			tcp = "127.0.0.1:" + port
		}
	}
	proxy := newCountingProxy(b, tcp)
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", proxy.ln.Addr().(*net.TCPAddr).Port, recv.ID())
	if err := pub.Connect(context.Background(), addr); err != nil {
		b.Fatal(err)
	}
	waitMesh(b, recv, pub)
	batches := make([]*Batch, b.N)
	payload := 0
	for i := range batches {
		bt, err := pub.NewBatch(uint64(i*count), 9, testCodes(count, i))
		if err != nil {
			b.Fatal(err)
		}
		batches[i] = bt
		payload += len(bt.Raw)
	}
	// The bandwidth meter folds bytes into its totals once a second.
	time.Sleep(1500 * time.Millisecond)
	up0, down0, st0 := proxy.up.Load(), proxy.down.Load(), pub.Stats().BytesOut

	b.ResetTimer()
	start := time.Now()
	for _, bt := range batches {
		if err := pub.Publish(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, "delivery", func() bool {
		if time.Since(start) > 50*time.Second { // explain before waitFor gives up
			b.Logf("receiver holds %d of %d: %+v", recv.log.Count(), b.N*count, recv.Stats())
		}
		return recv.log.Count() == b.N*count
	})
	b.StopTimer()
	time.Sleep(1500 * time.Millisecond)

	grads := float64(b.N * count)
	wire := float64(proxy.up.Load() - up0 + proxy.down.Load() - down0)
	stream := float64(pub.Stats().BytesOut - st0)
	b.ReportMetric(wire/grads, "wire-B/grad")
	b.ReportMetric(wire/float64(b.N), "wire-B/msg")
	b.ReportMetric(float64(proxy.down.Load()-down0)/float64(b.N), "wire-back-B/msg")
	b.ReportMetric(stream/float64(b.N), "stream-B/msg")
	b.ReportMetric(float64(payload)/float64(b.N), "payload-B/msg")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSwarmBytes: n fully connected peers each publish b.N/n batches;
// reports the stream-level bytes all peers send per gradient delivered to one
// peer, which includes gossipsub's mesh duplicates and control traffic.
//
//	go test -run '^$' -bench BenchmarkSwarmBytes -benchtime 2000x ./p2p/
func BenchmarkSwarmBytes(b *testing.B) {
	for _, c := range []struct{ n, d int }{{4, 6}, {8, 6}, {8, 3}} {
		b.Run(fmt.Sprintf("peers=%d/D=%d", c.n, c.d), func(b *testing.B) { swarmBytes(b, c.n, c.d) })
	}
}

func swarmBytes(b *testing.B, n, d int) {
	const count = 64
	run := fmt.Sprintf("swarm%d-%d", n, d)
	var ps []*testPeer
	for range n {
		ps = append(ps, newTestPeer(b, run, func(o *Options) {
			o.SyncInterval, o.MeshDegree = time.Hour, d
		}))
	}
	connectAll(b, ps...)
	// Wait for meshes of at least Dlo peers, not a clique.
	waitFor(b, "gossip mesh", func() bool {
		for _, p := range ps {
			if p.Stats().MeshPeers < min(n-1, meshParams(p.opts.MeshDegree).Dlo) {
				return false
			}
		}
		return true
	})
	per := max(b.N/n, 1)
	time.Sleep(1500 * time.Millisecond)
	var out0 int64
	for _, p := range ps {
		out0 += p.Stats().BytesOut
	}
	b.ResetTimer()
	for i, p := range ps {
		p.publish(b, uint64(i)<<40, per, count)
	}
	waitFor(b, "delivery", func() bool {
		for _, p := range ps {
			if p.log.Count() != n*per*count {
				return false
			}
		}
		return true
	})
	b.StopTimer()
	time.Sleep(1500 * time.Millisecond)
	var out int64
	var dups uint64
	for _, p := range ps {
		out += p.Stats().BytesOut
		dups += p.Stats().GossipDuplicates
	}
	grads := float64(n * per * count)
	b.ReportMetric(float64(out-out0)/grads, "stream-B/grad")
	b.ReportMetric(float64(out-out0)/grads/float64(n-1), "stream-B/grad/receiver")
	b.ReportMetric(float64(dups)/float64(n*per)/float64(n-1), "dups/msg/receiver")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSyncJoin: a joiner fetches b.N batches of 64 updates held by three
// donors, by anti-entropy alone; reports updates per second and the bytes the
// donors sent per update (stream level).
//
//	go test -run '^$' -bench BenchmarkSyncJoin -benchtime 3000x ./p2p/
func BenchmarkSyncJoin(b *testing.B) {
	const run, count = "syncjoin", 64
	quiet := func(o *Options) { o.SyncInterval = time.Hour }
	var donors []*testPeer
	for range 3 {
		donors = append(donors, newTestPeer(b, run, quiet))
	}
	for i := 0; i < b.N; i++ {
		src := donors[i%len(donors)]
		bt, err := SignBatch(src.key, src.run, uint64(i/len(donors)*count), 5, testCodes(count, i))
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range donors {
			d.log.Store(bt)
		}
	}
	joiner := newTestPeer(b, run, quiet)
	// A peer joining the topic starts a round by itself: time from the dial,
	// which adds a few kilobytes of connection set-up to the byte count.
	want := b.N * count
	b.ResetTimer()
	start := time.Now()
	connectAll(b, append(donors, joiner)...)
	waitFor(b, "joiner holds the log", func() bool {
		if joiner.log.Count() == want {
			return true
		}
		joiner.SyncNow(context.Background())
		return joiner.log.Count() == want
	})
	elapsed := time.Since(start)
	b.StopTimer()
	time.Sleep(1500 * time.Millisecond)
	var out int64
	for _, d := range donors {
		out += d.Stats().BytesOut
	}
	b.ReportMetric(float64(want)/elapsed.Seconds(), "updates/s")
	b.ReportMetric(float64(out)/float64(want), "stream-B/update")
	b.ReportMetric(0, "ns/op")
}
