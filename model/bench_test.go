//go:build unix

package model

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/zopeer/zopeer/model/blas"
)

const gpt2SmallConfig = `{"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_layer":12,"n_head":12,"n_positions":1024}`

// randomModel is a model of the given config with GPT-2's initialisation.
func randomModel(tb testing.TB, config string) *Model {
	cfg, err := ParseConfig([]byte(config))
	if err != nil {
		tb.Fatal(err)
	}
	m := newModel(cfg)
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range m.Params() {
		if len(p.Shape) == 1 { // norms get 1, biases 0: as initialised
			if p.Name[len(p.Name)-6:] == "weight" {
				for i := range p.Data {
					p.Data[i] = 1
				}
			}
			continue
		}
		for i := range p.Data {
			p.Data[i] = float32(r.NormFloat64() * 0.02)
		}
	}
	return m
}

// forwardFLOPs counts multiply-adds as 2 FLOPs: the projections, the
// attention products (full n×n squares, as computed) and the vocabulary head.
func forwardFLOPs(c Config, n int) float64 {
	d, l := float64(c.Hidden), float64(c.Layers)
	perToken := 2 * (l*(4*d*d+2*d*float64(c.FF)) + float64(c.Vocab)*d)
	return perToken*float64(n) + l*4*float64(n)*float64(n)*d
}

// BenchmarkForwardGPT2Small: one 256-token sequence through a GPT-2-small
// shaped model (random weights), loss included. ZOPEER_BLAS=go for pure Go.
func BenchmarkForwardGPT2Small(b *testing.B) {
	m := randomModel(b, gpt2SmallConfig)
	const n = 256
	seq := Sequence{Tokens: make([]int, n)}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range seq.Tokens {
		seq.Tokens[i] = r.IntN(m.cfg.Vocab)
	}
	batch := []Sequence{seq}
	start := time.Now()
	if _, _, err := m.Loss(batch); err != nil { // builds the graph
		b.Fatal(err)
	}
	b.Logf("blas %s (%s); first pass incl. graph build %v", blas.Current().Name, blas.Current().CoreName, time.Since(start).Round(time.Millisecond))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := m.Loss(batch); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(n/s, "tokens/s")
	b.ReportMetric(forwardFLOPs(m.Config(), n)/s/1e9, "GFLOP/s")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peakRSS-MiB") // Linux reports KiB
	}
	var w int
	for _, p := range m.Params() {
		w += 4 * len(p.Data)
	}
	b.Logf("weights %d MiB", w>>20)
}

// cpuTime is the process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
