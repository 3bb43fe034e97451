package p2p

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Two peers on one TCP port: libp2p binds with SO_REUSEPORT, so without the
// check the second would start and share the port.
func TestPortInUse(t *testing.T) {
	port := freePort(t)
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	newTestPeer(t, "run", func(o *Options) { o.ListenAddrs = []string{addr} })
	o := testOptions(t, "run", NewMemLog())
	o.ListenAddrs = []string{addr}
	p, err := New(context.Background(), o)
	if err == nil {
		p.Close()
		t.Fatal("a second peer started on a TCP port in use")
	}
	want := fmt.Sprintf("TCP port %d is already in use", port)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to say %q", err, want)
	}
	// QUIC: the same for UDP.
	uaddr := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)
	newTestPeer(t, "run", func(o *Options) { o.ListenAddrs = []string{uaddr} })
	o.ListenAddrs = []string{uaddr}
	if p, err = New(context.Background(), o); err == nil {
		p.Close()
		t.Fatal("a second peer started on a UDP port in use")
	}
	if want := fmt.Sprintf("UDP port %d is already in use", port); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to say %q", err, want)
	}
}

func TestWrongRunNamedAtOnce(t *testing.T) {
	a := newTestPeer(t, "alpha", nil)
	b := newTestPeer(t, "beta", func(o *Options) { o.Bootstrap = a.Addrs() })
	err := b.AwaitRunPeer(context.Background(), 30*time.Second)
	if !IsWrongRun(err) {
		t.Fatalf("got %v, want a wrong-run error", err)
	}
	want := fmt.Sprintf("peer %s serves run \"alpha\", not \"beta\"", a.ID())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestDeadBootstrapSaysWhatWasTried(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	dead := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", freePort(t), id)
	b := newTestPeer(t, "run", func(o *Options) { o.Bootstrap = []string{dead} })
	err := b.AwaitRunPeer(context.Background(), 2*time.Second)
	if !IsNoPeer(err) {
		t.Fatalf("got %v, want a no-peer error", err)
	}
	for _, want := range []string{"no reachable peer of the run within 2s", "bootstrap " + dead + ": ", "mDNS off", "DHT off"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The peer keeps retrying: a peer that comes up at that address later is found.
}

func TestUsefulAddrs(t *testing.T) {
	m := func(ss ...string) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, s := range ss {
			out = append(out, ma.StringCast(s))
		}
		return out
	}
	str := func(as []ma.Multiaddr) string {
		var ss []string
		for _, a := range as {
			ss = append(ss, a.String())
		}
		return strings.Join(ss, ",")
	}
	for _, c := range []struct{ in, useful, dht []ma.Multiaddr }{
		{m("/ip4/127.0.0.1/tcp/1"), m("/ip4/127.0.0.1/tcp/1"), m("/ip4/127.0.0.1/tcp/1")},
		{m("/ip4/127.0.0.1/tcp/1", "/ip4/192.168.1.2/tcp/1"), m("/ip4/192.168.1.2/tcp/1"), m("/ip4/192.168.1.2/tcp/1")},
		{m("/ip4/127.0.0.1/tcp/1", "/ip4/192.168.1.2/tcp/1", "/ip4/7.7.7.7/tcp/1"),
			m("/ip4/192.168.1.2/tcp/1", "/ip4/7.7.7.7/tcp/1"), m("/ip4/7.7.7.7/tcp/1")},
	} {
		if got := usefulAddrs(c.in); str(got) != str(c.useful) {
			t.Errorf("usefulAddrs(%s) = %s, want %s", str(c.in), str(got), str(c.useful))
		}
		if got := dhtAddrs(c.in); str(got) != str(c.dht) {
			t.Errorf("dhtAddrs(%s) = %s, want %s", str(c.in), str(got), str(c.dht))
		}
	}
}

// A peer restarted with the peers it knew (and no bootstrap) finds the run again.
func TestKnownPeersRedialled(t *testing.T) {
	a := newTestPeer(t, "run", nil)
	b := newTestPeer(t, "run", func(o *Options) { o.Bootstrap = a.Addrs() })
	waitFor(t, "b sees a in the run", func() bool { return len(b.KnownPeers(16)) > 0 })
	known := b.KnownPeers(16)
	c := newTestPeer(t, "run", func(o *Options) { o.KnownPeers = known })
	if err := c.AwaitRunPeer(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// With every NAT option on (the defaults), a peer starts and shows its
// connections as direct.
func TestNetInfoDefaults(t *testing.T) {
	on := func(o *Options) {
		d := DefaultOptions()
		o.RelayClient, o.RelayService, o.HolePunching, o.NATService, o.AutoNATv2 = d.RelayClient, d.RelayService, d.HolePunching, d.NATService, d.AutoNATv2
	}
	a := newTestPeer(t, "run", on)
	b := newTestPeer(t, "run", func(o *Options) { on(o); o.Bootstrap = a.Addrs() })
	if err := b.AwaitRunPeer(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ni := b.NetInfo()
	if ni.Direct != 1 || ni.Relayed != 0 || len(ni.Conns) != 1 || ni.Conns[0].Relayed || ni.Conns[0].Run != "run" {
		t.Fatalf("net info %+v", ni)
	}
	if ni.Reachability == "" {
		t.Fatal("no reachability")
	}
}
