package model

import (
	"fmt"
	"github.com/zopeer/zopeer/model/blas"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// streamedRandom is a random model of config whose weights live in a zo
// engine as int32 only, streamed into the forward pass.
func streamedRandom(t *testing.T, config string) (*Model, *zo.Engine, int) {
	t.Helper()
	cfg, err := ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	m := NewRandom(cfg, 1)
	var specs []zo.TensorSpec
	weights := 0
	for _, p := range m.Params() {
		specs = append(specs, zo.TensorSpec(p))
		weights += 4 * len(p.Data)
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := zo.NewEngine(zo.Config{Run: "ws", Eps: 1e-3, LR: 1e-3}, w)
	if err != nil {
		t.Fatal(err)
	}
	w.DropViews()
	m.SetSource(e)
	return m, e, weights
}

// The memory of a forward pass (and of a ZO step) beyond the int32 weights
// does not grow with the number of layers: the activations and the buffers
// parameters are derived into are the same for 2 and 8 layers, and what a
// pass allocates grows by a few KB of goroutine launches per layer, so no
// per-layer float32 copy of the weights exists at any time.
func TestWorkingSetIndependentOfLayers(t *testing.T) {
	configs := map[string]string{
		"gpt2":  `{"model_type":"gpt2","vocab_size":3000,"n_embd":128,"n_layer":%d,"n_head":4,"n_positions":256}`,
		"llama": `{"model_type":"llama","vocab_size":3000,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":%d,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":256,"tie_word_embeddings":false}`,
	}
	for arch, config := range configs {
		t.Run(arch, func(t *testing.T) {
			type result struct{ ws, alloc, weights int }
			var res []result
			for _, layers := range []int{2, 8} {
				m, e, weights := streamedRandom(t, fmt.Sprintf(config, layers))
				r := rand.New(rand.NewPCG(1, 2))
				seqs := []Sequence{{Tokens: make([]int, 100)}, {Tokens: make([]int, 60), LossFrom: 20}}
				for _, s := range seqs {
					for i := range s.Tokens {
						s.Tokens[i] = r.IntN(3000)
					}
				}
				b := Batch{m, seqs}
				for i := range 2 { // warm: buffers reach their size
					if _, err := e.Step(b, zo.DeriveSeed("ws", 0, uint64(i))); err != nil {
						t.Fatal(err)
					}
				}
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				if _, err := b.Loss(); err != nil {
					t.Fatal(err)
				}
				if _, err := e.Step(b, zo.DeriveSeed("ws", 1, 0)); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&m1)
				res = append(res, result{m.WorkingSetBytes(), int(m1.TotalAlloc-m0.TotalAlloc) / 3, weights})
				t.Logf("%d layers: weights %d KiB (int32), working set %d KiB, allocated %d B per pass",
					layers, weights>>10, res[len(res)-1].ws>>10, res[len(res)-1].alloc)
			}
			small, big := res[0], res[1]
			if big.ws != small.ws {
				t.Errorf("working set %d B with 8 layers, %d B with 2", big.ws, small.ws)
			}
			// What a pass allocates is garbage from goroutine launches (a few KB
			// per layer); a float32 copy of any matrix of a layer would add
			// at least 1/64 of the layer's weights per layer.
			layer := (big.weights - small.weights) / 6
			if blas.Current().Name == "gonum" {
				// gonum's pure-Go Sgemm allocates its own blocking workspace
				// on every call: garbage, not held memory, but it hides what
				// this bound looks for. The working set above still counts.
				t.Logf("pure-Go BLAS: per-layer allocations not checked (%d B with 8 layers, %d B with 2)", big.alloc, small.alloc)
				return
			}
			if perLayer := (big.alloc - small.alloc) / 6; perLayer > layer/64 {
				t.Errorf("a pass allocates %d B more per layer (%d B with 8 layers, %d B with 2; one layer's weights: %d B)",
					perLayer, big.alloc, small.alloc, layer)
			}
		})
	}
}
