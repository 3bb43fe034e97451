package node

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address no one listens on (for an API whose
// address the test must know before the peer writes api.addr).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// From its first answer on, the status is never half-initialised: while
// starting or replaying it says so; from catching_up on it carries the log's
// counts and the weights hash. /healthz answers with the state.
func TestStatusNeverHalfInitialised(t *testing.T) {
	n := newTestNet(t)
	h := n.home("a")
	const held = 4096
	n.fillLog(h, held)
	api := freeAddr(t)
	done := make(chan struct{})
	seen := map[string]bool{}
	var bad []string
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			st, err := httpStatus(api)
			if err != nil {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			seen[st.State] = true
			switch st.State {
			case StateStarting, StateReplaying:
			default:
				if st.WeightsHash == "" || st.SetDigest == "" || st.Updates != held || st.HashUpdates != held {
					bad = append(bad, st.State)
				}
			}
			if st.State == StateServing {
				return
			}
		}
	}()
	p := n.start("a", h, -1, nil, func(ps *PeerSettings) { ps.API = api })
	<-done
	if len(bad) > 0 {
		t.Fatalf("half-initialised statuses in states %v", bad)
	}
	if !seen[StateServing] || !seen[StateReplaying] && !seen[StateStarting] {
		t.Fatalf("states seen: %v", seen)
	}
	resp, err := http.Get("http://" + p.api + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), StateServing) {
		t.Fatalf("healthz: %d %q", resp.StatusCode, b)
	}
	t.Logf("states seen: %v", seen)
}

// The API closes an idle keep-alive connection, and one that never finishes
// its request.
func TestAPITimeouts(t *testing.T) {
	saved := [3]time.Duration{apiReadTimeout, apiWriteTimeout, apiIdleTimeout}
	apiReadTimeout, apiWriteTimeout, apiIdleTimeout = 300*time.Millisecond, time.Second, 300*time.Millisecond
	defer func() { apiReadTimeout, apiWriteTimeout, apiIdleTimeout = saved[0], saved[1], saved[2] }()
	n := newTestNet(t)
	p := n.start("a", n.home("a"), -1, nil, nil)

	c, err := net.Dial("tcp", p.api)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("an idle keep-alive connection stayed open: %v", err)
	}

	slow, err := net.Dial("tcp", p.api)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("a request never finished kept its connection: %v", err)
	}
}
