package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zopeer/zopeer/node/dashboard"
)

// The API's timeouts: requests are tiny GETs, answers a few kilobytes; an
// idle keep-alive connection is closed after apiIdleTimeout.
var (
	apiReadTimeout  = 10 * time.Second
	apiWriteTimeout = 30 * time.Second
	apiIdleTimeout  = 60 * time.Second
)

// serveAPI serves the local HTTP API on addr until the returned stop is called:
// GET /api/status (JSON), GET /metrics (Prometheus), GET /healthz.
func (d *Daemon) serveAPI(addr string) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statusCollector{d})
	d.met.register(reg, d.start)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(d.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/history", d.handleHistory)
	mux.HandleFunc("GET /api/peers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d.Peers())
	})
	mux.HandleFunc("POST /api/export", d.handleExport)
	mux.Handle("GET /{$}", dashboard.Handler())
	mux.Handle("GET /dashboard/", dashboard.Handler())
	// /healthz answers 200 while the peer works or gets ready (its state on
	// the line: starting, replaying, catching_up, training, serving) and 503
	// once it failed or is stopping.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := d.Status()
		if st.State == StateFailed || st.State == StateStopping {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, st.State, st.Error)
			return
		}
		fmt.Fprintln(w, "ok", st.State)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: api: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: apiReadTimeout,
		WriteTimeout: apiWriteTimeout, IdleTimeout: apiIdleTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("api server", "err", err)
		}
	}()
	d.log.Info("api listening", "addr", ln.Addr().String())
	d.snapshot(func(st *Status) { st.API = ln.Addr().String() })
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// statusCollector exports the status as Prometheus metrics at scrape time.
type statusCollector struct{ d *Daemon }

var (
	mUpdates  = prometheus.NewDesc("zopeer_updates", "Updates in the log.", nil, nil)
	mOwn      = prometheus.NewDesc("zopeer_own_updates", "Updates this peer contributed.", nil, nil)
	mSteps    = prometheus.NewDesc("zopeer_steps_total", "Steps contributed since start.", nil, nil)
	mPeers    = prometheus.NewDesc("zopeer_peers", "Connected peers.", nil, nil)
	mEval     = prometheus.NewDesc("zopeer_eval_loss", "Latest held-out loss (nats per target token).", nil, nil)
	mContrib  = prometheus.NewDesc("zopeer_contributing", "1 while the peer trains.", nil, nil)
	mCatching = prometheus.NewDesc("zopeer_catching_up", "1 while the peer catches up.", nil, nil)
	mBest     = prometheus.NewDesc("zopeer_best_peer_updates", "Largest update count a peer announced.", nil, nil)
	mMismatch = prometheus.NewDesc("zopeer_hash_mismatches", "Peers that announced our set digest with another weights hash.", nil, nil)
	mFlagged  = prometheus.NewDesc("zopeer_flagged_machines", "Machines caught equivocating.", nil, nil)
	mDiscred  = prometheus.NewDesc("zopeer_discredited_machines", "Machines whose announced counts anti-entropy did not bear out (ignored for a while).", nil, nil)
	mState    = prometheus.NewDesc("zopeer_state", "1 for the peer's current state.", []string{"state"}, nil)
	mBytes    = prometheus.NewDesc("zopeer_p2p_bytes_total", "Bytes of libp2p stream payloads (above yamux and Noise; not link level: TCP/IP, Noise and yamux framing are not counted).", []string{"dir"}, nil)
	mGossip   = prometheus.NewDesc("zopeer_gossip_messages_total", "Gossip messages by outcome.", []string{"outcome"}, nil)
	mStreamB  = prometheus.NewDesc("zopeer_p2p_stream_bytes_total", "Bytes of libp2p stream payloads by protocol (not link level).", []string{"protocol", "dir"}, nil)
	mGossipB  = prometheus.NewDesc("zopeer_gossip_bytes_total", "Bytes of gossipsub RPCs by part (protobuf, before stream framing): msg_updates, msg_state, msg_evidence, ihave, iwant, idontwant, graft, prune, subscriptions, framing.", []string{"part", "dir"}, nil)
	// Anti-entropy, each counter counting one kind of thing.
	mSyncReq      = prometheus.NewDesc("zopeer_sync_requests_total", "Sync requests from peers: served, or refused as busy (too many at once).", []string{"outcome"}, nil)
	mSyncBatches  = prometheus.NewDesc("zopeer_sync_fetched_batches_total", "Signed batches fetched from peers by anti-entropy.", nil, nil)
	mSyncUpdates  = prometheus.NewDesc("zopeer_sync_fetched_updates_total", "Updates in the batches anti-entropy fetched.", nil, nil)
	mSyncRejected = prometheus.NewDesc("zopeer_sync_rejected_responses_total", "Sync responses cut off for a protocol violation.", nil, nil)
	mPublished    = prometheus.NewDesc("zopeer_published_batches_total", "Batches this peer published.", nil, nil)
	mRefused      = prometheus.NewDesc("zopeer_refused_batches_total", "Batches refused, by the rule they broke.", []string{"reason"}, nil)
	mExcluded     = prometheus.NewDesc("zopeer_excluded_machines", "Machines excluded from the run (equivocation evidence held).", nil, nil)
	mVerified     = prometheus.NewDesc("zopeer_verified_samples_total", "Other machines' samples re-computed (public-data runs), by outcome: matched, or skipped (basis not held, too far, excluded).", []string{"outcome"}, nil)
	mAccusations  = prometheus.NewDesc("zopeer_accusations_total", "Accusations: made by this peer, confirmed or rejected by its re-computation, dropped (queue full).", []string{"outcome"}, nil)
	mBanned       = prometheus.NewDesc("zopeer_banned_machines", "Machines banned on a confirmed accusation (a subset of the excluded ones).", nil, nil)
	mOverflow     = prometheus.NewDesc("zopeer_overflow", "1 while the run's updates hold a weight past int32 (the peer refuses to train).", nil, nil)
)

func (statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mUpdates, mOwn, mSteps, mPeers, mEval, mContrib, mCatching, mBest,
		mMismatch, mFlagged, mDiscred, mState, mBytes, mGossip, mStreamB, mGossipB, mSyncReq, mSyncBatches, mSyncUpdates, mSyncRejected, mPublished, mRefused, mExcluded, mVerified, mAccusations, mBanned, mOverflow} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	g(mUpdates, float64(st.Updates))
	g(mOwn, float64(st.OwnUpdates))
	n(mSteps, float64(st.Steps))
	g(mPeers, float64(st.Peers))
	if st.EvalLoss != nil {
		g(mEval, *st.EvalLoss)
	}
	g(mContrib, b(st.Contributing))
	g(mCatching, b(st.CatchingUp))
	g(mBest, float64(st.BestPeer))
	g(mMismatch, float64(len(st.Mismatches)))
	g(mFlagged, float64(len(st.Flagged)))
	g(mDiscred, float64(len(st.Discredited)))
	g(mState, 1, st.State)
	n(mBytes, float64(st.P2P.BytesIn), "in")
	n(mBytes, float64(st.P2P.BytesOut), "out")
	for outcome, v := range map[string]uint64{"accepted": st.P2P.GossipAccepted, "rejected": st.P2P.GossipRejected,
		"ignored": st.P2P.GossipIgnored, "duplicate": st.P2P.GossipDuplicates, "dropped": st.P2P.GossipDropped,
		"undeliverable": st.P2P.Undeliverable} {
		n(mGossip, float64(v), outcome)
	}
	for proto, f := range st.Traffic.Streams {
		n(mStreamB, float64(f.In), proto, "in")
		n(mStreamB, float64(f.Out), proto, "out")
	}
	for part, f := range st.Traffic.Gossip {
		n(mGossipB, float64(f.In), part, "in")
		n(mGossipB, float64(f.Out), part, "out")
	}
	n(mSyncReq, float64(st.P2P.SyncServed), "served")
	n(mSyncReq, float64(st.P2P.SyncBusy), "busy")
	n(mSyncBatches, float64(st.P2P.SyncFetched))
	n(mSyncUpdates, float64(st.P2P.SyncUpdates))
	n(mSyncRejected, float64(st.P2P.SyncRejected))
	n(mPublished, float64(st.P2P.Published))
	for reason, v := range st.Refused {
		n(mRefused, float64(v), reason)
	}
	g(mExcluded, float64(st.ExcludedTotal))
	v := st.Verification
	n(mVerified, float64(v.Verified), "matched")
	n(mVerified, float64(v.Skipped), "skipped")
	for outcome, x := range map[string]uint64{"made": v.AccusationsMade, "confirmed": v.AccusationsConfirmed,
		"rejected": v.AccusationsRejected, "dropped": v.AccusationsDropped} {
		n(mAccusations, float64(x), outcome)
	}
	g(mBanned, float64(len(v.Banned)))
	g(mOverflow, b(st.Overflow != ""))
}
