//go:build unix

package model

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/zopeer/zopeer/internal/cputime"
	"github.com/zopeer/zopeer/model/blas"
	"github.com/zopeer/zopeer/zo"
)

const gpt2SmallConfig = `{"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_layer":12,"n_head":12,"n_positions":1024}`

// randomModel is NewRandom from a config.json text.
func randomModel(tb testing.TB, config string) *Model {
	cfg, err := ParseConfig([]byte(config))
	if err != nil {
		tb.Fatal(err)
	}
	return NewRandom(cfg, 1)
}

// SmolLM2-135M's shape: 30 layers, 9 query and 3 key/value heads, tied head.
const smolLMConfig = `{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"max_position_embeddings":8192,"rope_theta":100000,"tie_word_embeddings":true}`

// BenchmarkForwardGPT2Small: one 256-token sequence through a GPT-2-small
// shaped model (random weights), loss included, weights streamed from a zo
// engine as peers run it. ZOPEER_BLAS=go for pure Go.
func BenchmarkForwardGPT2Small(b *testing.B) { benchForward(b, gpt2SmallConfig, 256, true) }

// BenchmarkForwardGPT2SmallViews reads float32 weights held by the model.
func BenchmarkForwardGPT2SmallViews(b *testing.B) { benchForward(b, gpt2SmallConfig, 256, false) }

// BenchmarkForwardSmolLM135M: the same for a SmolLM2-135M-shaped model.
func BenchmarkForwardSmolLM135M(b *testing.B) { benchForward(b, smolLMConfig, 256, true) }

// gpt2Tiny is a 3.4M-parameter GPT-2 (node.Shapes' gpt2-3m): the fixed cost
// of a pass, 128 tokens.
const gpt2Tiny = `{"model_type":"gpt2","vocab_size":8192,"n_embd":192,"n_layer":4,"n_head":4,"n_positions":512}`

// BenchmarkForwardGPT2Tiny: a pass of 128 tokens through gpt2Tiny.
func BenchmarkForwardGPT2Tiny(b *testing.B) { benchForward(b, gpt2Tiny, 128, true) }

func benchForward(b *testing.B, config string, n int, stream bool) {
	m := randomModel(b, config)
	if stream {
		var specs []zo.TensorSpec
		for _, p := range m.Params() {
			specs = append(specs, zo.TensorSpec(p))
		}
		w, err := zo.NewWeights(specs)
		if err != nil {
			b.Fatal(err)
		}
		e, err := zo.NewEngine(zo.Config{Run: "bench", Eps: 1e-3, LR: 1e-6}, w)
		if err != nil {
			b.Fatal(err)
		}
		w.DropViews()
		m.SetSource(e)
	}
	seq := Sequence{Tokens: make([]int, n)}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range seq.Tokens {
		seq.Tokens[i] = r.IntN(m.cfg.Vocab)
	}
	batch := []Sequence{seq}
	start := time.Now()
	if _, _, err := m.Loss(batch); err != nil {
		b.Fatal(err)
	}
	b.Logf("blas %s (%s); first pass %v", blas.Current().Name, blas.Current().CoreName, time.Since(start).Round(time.Millisecond))
	b.ReportAllocs()
	cpu0 := cputime.Now()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := m.Loss(batch); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric((cputime.Now()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(n)/s, "tokens/s")
	b.ReportMetric(ForwardFLOPs(m.Config(), n)/s/1e9, "GFLOP/s")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peakRSS-MiB") // Linux reports KiB
	}
	var w int
	for _, sz := range m.sizes {
		w += 4 * sz
	}
	b.Logf("weights %d MiB, working set %.1f MiB", w>>20, float64(m.WorkingSetBytes())/(1<<20))
}
