package node

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	return string(b)
}

// twoPeers starts a live two-peer run that evaluates every 2 steps, and
// waits until a's history has points and each sees the other.
func twoPeers(t *testing.T) (*testNet, *testDaemon, *testDaemon) {
	n := newTestNet(t)
	n.s.EvalEvery = 2
	a := n.start("a", n.home("a"), 0, nil, nil)
	b := n.start("b", n.home("b"), 0, []string{a.addr}, nil)
	for _, p := range []*testDaemon{a, b} {
		p.wait(t, 2*time.Minute, "training with a peer and two evaluations", func(st Status) bool {
			var h struct{ Points []Point }
			json.Unmarshal([]byte(httpGet(t, "http://"+p.api+"/api/history")), &h)
			return st.Peers > 0 && st.OwnUpdates > 0 && len(h.Points) >= 2
		})
	}
	return n, a, b
}

// The API serves the dashboard (self-contained), the history kept in the
// home, the peers with what is known of each, and the metrics.
func TestWatchAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("a live two-peer run")
	}
	_, a, b := twoPeers(t)
	page := httpGet(t, "http://"+a.api+"/")
	if !strings.Contains(page, `id="chart"`) || strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "src=") {
		t.Fatal("the dashboard is missing or loads something from elsewhere")
	}
	var peers []PeerView
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+a.api+"/api/peers")), &peers); err != nil {
		t.Fatal(err)
	}
	bst := b.status(t)
	found := false
	for _, p := range peers {
		if p.Machine == bst.Machine {
			found = true
			if p.ID != bst.PeerID || len(p.Addrs) == 0 || p.Relayed || p.Connected == "" {
				t.Fatalf("peer b as a sees it: %+v", p)
			}
		}
	}
	if !found {
		t.Fatalf("a's peers %+v lack b (%s)", peers, bst.Machine)
	}
	// Rates and history.
	st := a.wait(t, time.Minute, "rates", func(st Status) bool { return st.Rates.OwnUpdatesPerSec > 0 && st.StartedAt != "" })
	if st.Rates.UpdatesPerSec < st.Rates.OwnUpdatesPerSec {
		t.Fatalf("rates %+v", st.Rates)
	}
	var h struct{ Points []Point }
	json.Unmarshal([]byte(httpGet(t, "http://"+a.api+"/api/history")), &h)
	last := h.Points[len(h.Points)-1]
	// A point after training steps carries the train loss and the forward
	// passes (a point recorded while the peer only applies others' updates
	// has neither).
	trained := false
	for _, p := range h.Points {
		trained = trained || p.Forwards > 0 && p.Forwards%2 == 0 && p.TrainLoss != nil && *p.TrainLoss > 0
	}
	if !trained {
		t.Errorf("no history point carries a train loss and forward passes: %+v", h.Points)
	}
	json.Unmarshal([]byte(httpGet(t, "http://"+a.api+"/api/history?since="+jsonNum(last.Time))), &h)
	if len(h.Points) != 0 && h.Points[0].Time <= last.Time {
		t.Fatalf("since: %+v", h.Points)
	}
	m := httpGet(t, "http://"+a.api+"/metrics")
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "zopeer_build_info{", "zopeer_start_time_seconds",
		"zopeer_step_seconds_count", "zopeer_forward_seconds_bucket", "zopeer_sync_round_seconds", `zopeer_sync_requests_total{outcome="served"}`,
		"zopeer_sync_fetched_batches_total", "zopeer_sync_fetched_updates_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, gone := range []string{"zopeer_sync_total", "zopeer_uptime_seconds"} {
		if strings.Contains(m, gone+"{") || strings.Contains(m, gone+" ") {
			t.Errorf("/metrics still has %s", gone)
		}
	}
}

// The history is kept in the home: a restarted peer serves it again; a torn
// last line is dropped.
func TestHistoryKeptInHome(t *testing.T) {
	home := t.TempDir()
	var w watch
	w.open(home)
	for i := range 5 {
		w.record(Point{Time: float64(i + 1), Updates: uint64(64 * i), EvalLoss: 3 - float64(i)/10})
	}
	w.record(Point{Time: 9, EvalLoss: math.NaN()}) // never written: JSON has no NaN
	f, _ := os.OpenFile(filepath.Join(home, HistoryFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"t": 7, "upd`)
	f.Close()
	var w2 watch
	w2.open(home)
	got := w2.history(0)
	if len(got) != 5 || got[4].Updates != 256 || got[4].EvalLoss != 2.6 {
		t.Fatalf("reloaded history %+v", got)
	}
	if len(w2.history(3)) != 2 {
		t.Fatal("since does not filter")
	}
}

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) }
