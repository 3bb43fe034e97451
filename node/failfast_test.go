package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/p2p"
)

// startErr runs Start with a home lacking a manifest (a joiner) and returns
// its error. The tests assert what the error says, not how long it took
// (shared machines are noisy); the context bounds a hang.
func startErr(t *testing.T, edit func(*PeerSettings)) error {
	t.Helper()
	s := Defaults
	s.Home, s.Run = t.TempDir(), "zed"
	ps := testPeerSettings()
	ps.JoinTimeout = 2 * time.Second
	edit(&ps)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Start(ctx, s, ps, slog.New(slog.DiscardHandler))
}

func TestJoinerWrongRun(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	o := p2p.DefaultOptions()
	o.Run, o.Key, o.Log, o.Logger = "why", key, emptyLog{}, slog.New(slog.DiscardHandler)
	o.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	o.MDNS, o.DHT = false, false
	other, err := p2p.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = startErr(t, func(ps *PeerSettings) { ps.Bootstrap = other.Addrs() })
	want := fmt.Sprintf(`peer %s serves run "why", not "zed"`, other.ID())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to say %q", err, want)
	}
}

func TestJoinerDeadBootstrap(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	dead := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)
	err := startErr(t, func(ps *PeerSettings) { ps.Bootstrap = []string{dead} })
	for _, want := range []string{`joining run "zed": no reachable peer of the run within 2s; tried: bootstrap ` + dead + ": "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want it to say %q", err, want)
		}
	}
}

func TestPortInUseBeforeModel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	err = startErr(t, func(ps *PeerSettings) { ps.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)} })
	want := fmt.Sprintf("TCP port %d is already in use", port)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to say %q", err, want)
	}
	err = startErr(t, func(ps *PeerSettings) { ps.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"} })
	if err == nil || !strings.Contains(err.Error(), "--bootstrap") {
		t.Fatalf("a bootstrap address without /p2p/: %v", err)
	}
}
