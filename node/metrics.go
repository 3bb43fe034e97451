package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the daemon's latency histograms and process-level collectors
// (the status-derived metrics are in api.go's statusCollector).
type metrics struct {
	step, forward, syncRound prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		step: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "zopeer_step_seconds",
			Help:    "One contributed step: propose (Samples projected gradients), sign, log, apply, publish.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		forward: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "zopeer_forward_seconds",
			Help:    "One forward pass of a training mini-batch (half of a projected gradient, which takes two).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		syncRound: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "zopeer_sync_round_seconds",
			Help:    "One anti-entropy round the peer ran itself (catch-up rounds: digests, fetches, applying).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}),
	}
}

// register adds the histograms, Go and process collectors, build info and
// start time to reg.
func (m *metrics) register(reg *prometheus.Registry, start time.Time) {
	v, commit, goVersion := Version()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "zopeer_build_info",
		Help:        "1, labelled with the version, VCS commit and Go version of the binary.",
		ConstLabels: prometheus.Labels{"version": v, "commit": commit, "goversion": goVersion}})
	build.Set(1)
	started := prometheus.NewGauge(prometheus.GaugeOpts{Name: "zopeer_start_time_seconds",
		Help: "When the peer started, Unix seconds (uptime is time() - this)."})
	started.Set(float64(start.UnixMilli()) / 1000)
	reg.MustRegister(m.step, m.forward, m.syncRound, build, started,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func (m *metrics) observeForward(d time.Duration) { m.forward.Observe(d.Seconds()) }
