package main

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// adam is Adam with decoupled weight decay on matrices, over the gradients
// gorgonia's backward pass leaves on the parameter nodes. It is written
// here rather than taken from gorgonia because gorgonia's AdamSolver fixes
// its learning rate at construction, and the schedule needs to change it.
type adam struct {
	beta1, beta2, eps, decay float64
	m, v                     [][]float32
	t                        int
}

func newAdam(params G.Nodes, decay float64) *adam {
	a := &adam{beta1: 0.9, beta2: 0.98, eps: 1e-8, decay: decay}
	for _, p := range params {
		n := p.Shape().TotalSize()
		a.m = append(a.m, make([]float32, n))
		a.v = append(a.v, make([]float32, n))
	}
	return a
}

// step moves every parameter by one Adam update at learning rate lr.
func (a *adam) step(params G.Nodes, lr float64) error {
	a.t++
	c1 := 1 / (1 - math.Pow(a.beta1, float64(a.t)))
	c2 := 1 / (1 - math.Pow(a.beta2, float64(a.t)))
	for i, p := range params {
		gv, err := p.Grad()
		if err != nil {
			return fmt.Errorf("gen: gradient of %s: %w", p.Name(), err)
		}
		g, ok := gv.Data().([]float32)
		w, ok2 := p.Value().Data().([]float32)
		if !ok || !ok2 {
			return fmt.Errorf("gen: %s: gradient or value is not float32", p.Name())
		}
		m, v := a.m[i], a.v[i]
		decay := 0.0
		if p.Dims() == 2 {
			decay = a.decay // matrices and embeddings only, as in GPT-2 recipes
		}
		for j := range w {
			gj := float64(g[j])
			m[j] = float32(a.beta1*float64(m[j]) + (1-a.beta1)*gj)
			v[j] = float32(a.beta2*float64(v[j]) + (1-a.beta2)*gj*gj)
			upd := c1 * float64(m[j]) / (math.Sqrt(c2*float64(v[j])) + a.eps)
			w[j] = float32(float64(w[j]) - lr*(upd+decay*float64(w[j])))
		}
		clear(g) // the backward pass adds into the gradient, as gorgonia's own solvers assume
	}
	return nil
}
