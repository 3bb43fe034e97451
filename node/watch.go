package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/zopeer/zopeer/p2p"
)

// HistoryFile in a node's home keeps its training history, one JSON point
// a line (docs/API.md, "History file"), so the dashboard's curve survives
// restarts and scripts can plot a run; `zopeer train` and `zopeer start`
// both append to it.
const HistoryFile = "history.jsonl"

// maxHistory bounds the points kept in memory; older ones are thinned.
const maxHistory = 20000

// Point is one evaluation of the held-out loss (GET /api/history).
type Point struct {
	Time     float64 `json:"t"`         // Unix seconds
	Updates  uint64  `json:"updates"`   // updates in the weights evaluated
	Own      uint64  `json:"own"`       // of them, this machine's
	EvalLoss float64 `json:"eval_loss"` // nats per target token
	// TrainLoss is the mean (L+ + L−)/2 of this machine's samples since the
	// previous point; absent when it computed none.
	TrainLoss *float64 `json:"train_loss,omitempty"`
	// Forwards counts this machine's forward passes on training batches
	// since it started (two per sample; Q+1 per Q under onesided=Q),
	// evaluations excluded.
	Forwards uint64 `json:"forwards,omitempty"`
}

// lossMean accumulates training losses between history points.
type lossMean struct {
	sum float64
	n   int
}

func (m *lossMean) add(loss float64) { m.sum += loss; m.n++ }

// take returns the mean (nil if empty) and starts over.
func (m *lossMean) take() *float64 {
	if m.n == 0 {
		return nil
	}
	v := m.sum / float64(m.n)
	*m = lossMean{}
	return &v
}

// Rates are the status's recent throughput, over the last rateWindow.
type Rates struct {
	UpdatesPerSec    float64 `json:"updates_per_s"`     // growth of the log, from every machine
	OwnUpdatesPerSec float64 `json:"own_updates_per_s"` // this machine's contributions
	BytesInPerSec    float64 `json:"bytes_in_per_s"`    // libp2p traffic, moving average
	BytesOutPerSec   float64 `json:"bytes_out_per_s"`
}

// CatchUp is the progress of a catch-up, while the peer is catching up.
type CatchUp struct {
	Have       uint64  `json:"have"`        // updates held
	Target     uint64  `json:"target"`      // the largest count a peer announced (a claim)
	Percent    float64 `json:"percent"`     // Have/Target
	ETASeconds float64 `json:"eta_seconds"` // at the current rate; -1 unknown
}

// rateWindow is the span rates are measured over.
const rateWindow = 30 * time.Second

type sample struct {
	at     time.Time
	n, own uint64
}

// watch keeps what the dashboard shows beyond the status: the eval-loss
// history, a window of counts for rates, and when each machine was last heard
// and last grew. Its own mutex; any goroutine.
type watch struct {
	mu      sync.Mutex
	file    string // home/history.jsonl; "" keeps history in memory only
	points  []Point
	samples []sample
	heard   map[uint64]heardState
	grew    map[uint64]grown
}

type heardState struct {
	st p2p.State
	at time.Time
}

type grown struct {
	count uint64
	at    time.Time
}

// open loads the history kept in home (a damaged line ends the load: the
// file is only ever appended to, so that is a torn last write).
func (w *watch) open(home string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.file = filepath.Join(home, HistoryFile)
	f, err := os.Open(w.file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p Point
		if json.Unmarshal(sc.Bytes(), &p) != nil {
			break
		}
		w.points = append(w.points, p)
	}
	w.thin()
}

// thin halves the older half of the history when it grows past maxHistory. w.mu is held.
func (w *watch) thin() {
	for len(w.points) > maxHistory {
		half := len(w.points) / 2
		kept := w.points[:0:0]
		for i, p := range w.points[:half] {
			if i%2 == 0 {
				kept = append(kept, p)
			}
		}
		w.points = append(kept, w.points[half:]...)
	}
}

// record adds an evaluation to the history and to the home's file.
func (w *watch) record(p Point) {
	if math.IsNaN(p.EvalLoss) || math.IsInf(p.EvalLoss, 0) {
		return // JSON has no NaN; the status says what went wrong
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.points); n > 0 && w.points[n-1].Updates == p.Updates && w.points[n-1].EvalLoss == p.EvalLoss {
		return
	}
	w.points = append(w.points, p)
	w.thin()
	if w.file == "" {
		return
	}
	f, err := os.OpenFile(w.file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	b, _ := json.Marshal(p)
	f.Write(append(b, '\n'))
	f.Close()
}

// history returns the points after since (Unix seconds).
func (w *watch) history(since float64) []Point {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := []Point{}
	for _, p := range w.points {
		if p.Time > since {
			out = append(out, p)
		}
	}
	return out
}

// count notes the log's counts now, for rates.
func (w *watch) count(now time.Time, n, own uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples = append(w.samples, sample{now, n, own})
	i := 0
	for i < len(w.samples)-2 && now.Sub(w.samples[i+1].at) > rateWindow {
		i++
	}
	w.samples = w.samples[i:]
}

// rates returns updates/s and own/s over the window.
func (w *watch) rates() (all, own float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) < 2 {
		return 0, 0
	}
	a, b := w.samples[0], w.samples[len(w.samples)-1]
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 || b.n < a.n {
		return 0, 0
	}
	return float64(b.n-a.n) / dt, float64(b.own-a.own) / dt
}

// heardFrom notes a machine's announcement.
func (w *watch) heardFrom(st p2p.State, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.heard == nil {
		w.heard = map[uint64]heardState{}
	}
	w.heard[st.Machine] = heardState{st, at}
}

// lastHeard returns a machine's newest announcement.
func (w *watch) lastHeard(m uint64) (heardState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.heard[m]
	return h, ok
}

// grewAt notes a machine's count of updates in our log and returns when it
// last grew (the zero time if never seen growing).
func (w *watch) grewAt(m, count uint64, now time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.grew == nil {
		w.grew = map[uint64]grown{}
	}
	g, ok := w.grew[m]
	switch {
	case !ok:
		g = grown{count: count}
	case count > g.count:
		g = grown{count: count, at: now}
	}
	w.grew[m] = g
	return g.at
}

// fillWatch adds the rates and the catch-up progress to a status.
func (d *Daemon) fillWatch(st *Status) {
	all, own := d.watch.rates()
	st.Rates = Rates{UpdatesPerSec: all, OwnUpdatesPerSec: own, BytesInPerSec: st.P2P.RateIn, BytesOutPerSec: st.P2P.RateOut}
	st.StartedAt = d.start.UTC().Format(time.RFC3339)
	if st.CatchingUp && st.BestPeer > 0 {
		c := &CatchUp{Have: st.Updates, Target: max(st.BestPeer, st.Updates), ETASeconds: -1}
		c.Percent = 100 * float64(c.Have) / float64(c.Target)
		if all > 0 {
			c.ETASeconds = float64(c.Target-c.Have) / all
		}
		st.CatchUp = c
	}
}

// PeerView is one connected peer as GET /api/peers shows it.
type PeerView struct {
	p2p.PeerInfo
	Machine      string  `json:"machine"`           // 16 hex digits
	LatencyMs    float64 `json:"latency_ms"`        // 0: not measured
	Connected    string  `json:"connected_since"`   // RFC 3339
	Announced    *uint64 `json:"announced_updates"` // its latest announced count; null if never heard
	Lag          *int64  `json:"lag"`               // announced − ours (positive: it is ahead)
	LastSeen     string  `json:"last_seen"`         // its latest announcement, RFC 3339; "" never
	Agreement    string  `json:"agreement"`         // "agree", "MISMATCH", "other set" or "unknown" (PeerAgreement*)
	Contributing bool    `json:"contributing"`      // its updates in our log grew within contribWindow
	Held         uint64  `json:"held_updates"`      // its updates in our log
}

// contribWindow is how recently a machine's updates must have grown in our
// log for the dashboard to call it contributing.
const contribWindow = 30 * time.Second

// Peers lists the connected peers with what this peer knows of each.
func (d *Daemon) Peers() []PeerView {
	d.mu.Lock()
	pr := d.peer
	ours := d.snap
	d.mu.Unlock()
	if pr == nil {
		return []PeerView{}
	}
	now := time.Now()
	out := []PeerView{}
	for _, pi := range pr.PeerInfos() {
		v := PeerView{PeerInfo: pi, Machine: fmt.Sprintf("%016x", pi.Machine), Agreement: "unknown",
			LatencyMs: float64(pi.Latency.Microseconds()) / 1000, Connected: pi.Since.UTC().Format(time.RFC3339)}
		if h, ok := d.watch.lastHeard(pi.Machine); ok {
			c := h.st.Count
			lag := int64(c) - int64(ours.Updates)
			v.Announced, v.Lag, v.LastSeen = &c, &lag, h.at.UTC().Format(time.RFC3339)
			switch {
			case h.st.Digest.String() != ours.SetDigest:
				v.Agreement = "other set"
			case fmt.Sprintf("%x", h.st.WeightsHash) == ours.WeightsHash:
				v.Agreement = "agree"
			default:
				v.Agreement = "MISMATCH"
			}
		}
		if d.run != nil {
			v.Held = d.run.Log.Held(pi.Machine).Count()
			v.Contributing = now.Sub(d.watch.grewAt(pi.Machine, v.Held, now)) < contribWindow
		}
		out = append(out, v)
	}
	return out
}

// handleHistory is GET /api/history[?since=UNIX_SECONDS].
func (d *Daemon) handleHistory(w http.ResponseWriter, r *http.Request) {
	since, _ := strconv.ParseFloat(r.URL.Query().Get("since"), 64)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"points": d.watch.history(since)})
}
