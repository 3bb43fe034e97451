package model

import "math/rand/v2"

// NewRandom returns a model of cfg with GPT-2's initialisation (N(0, 0.02)
// matrices, unit norm weights, zero biases) from seed: a stand-in of a real
// checkpoint's shape for benchmarks.
func NewRandom(cfg *Config, seed uint64) *Model {
	m := newModel(cfg)
	r := rand.New(rand.NewPCG(seed, 2))
	for _, p := range m.Params() {
		if len(p.Shape) == 1 {
			if len(p.Name) >= 6 && p.Name[len(p.Name)-6:] == "weight" {
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

// ForwardFLOPs counts the FLOPs of a forward pass over one sequence of n
// tokens, multiply-adds as 2: the projections, the attention products (full
// n×n squares, as computed) and the vocabulary head.
func ForwardFLOPs(c Config, n int) float64 {
	d, l, ff := float64(c.Hidden), float64(c.Layers), float64(c.FF)
	q, kv := float64(c.Heads*c.HeadDim), float64(c.KVHeads*c.HeadDim)
	mlp := 2 * d * ff // GPT-2: up and down
	if c.Arch == Llama {
		mlp = 3 * d * ff // gate, up and down
	}
	perToken := 2 * (l*(d*(2*q+2*kv)+mlp) + float64(c.Vocab)*d)
	return perToken*float64(n) + l*4*float64(n)*float64(n)*q
}
