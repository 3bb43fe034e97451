package zo

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// TensorSpec describes one parameter tensor handed to NewWeights.
type TensorSpec struct {
	Name      string
	Shape     []int
	Data      []float32 // base weights; becomes the float32 view forward passes read
	Trainable bool
}

// Tensor is one parameter tensor. Q holds the canonical weights in fixed point,
// value = Q[i]·2^−Exp; View is the float32 copy that forward passes read and that
// the engine re-derives from Q (it is never updated by subtraction).
//
// Offset and Exp are fixed by the base weights. A caller restoring a
// checkpoint of the same layout may overwrite Q wholesale, but must then call
// Weights.SyncViews before the next Apply or Remove: the tensor caches an upper
// bound on max|Q| (see below) that only NewWeights, SyncViews and the engine's
// own applies keep true, and an Apply under a stale bound could wrap silently.
// Restore only into weights whose Overflow is zero (fresh from NewWeights, say):
// the net wrap counts describe the updates applied, not a restored Q, and a
// checkpoint never holds weights that overflowed (callers refuse to write one).
//
// Overflow. Q holds each element's true value (base plus every applied update,
// an exact integer) modulo 2^32, as int32. Wrapping addition is associative, so
// Q is a function of the set of updates however they were batched; so is each
// element's net wrap count k = (true − Q)/2^32. The engine keeps k exactly for
// the rare elements where it is not zero: applies whose worst case, added to
// the cached bound (rescanned once if needed), stays below 2^31 cannot cross
// the int32 boundary and take the fast kernels; any other apply of the tensor
// takes an exact int64 path that records every crossing. Weights.Overflow
// counts the elements with k ≠ 0.
type Tensor struct {
	Name      string
	Shape     []int
	Offset    uint64 // index of element 0 in the perturbation stream
	Exp       int
	Q         []int32
	View      []float32
	Trainable bool

	qmax  int64         // ≥ max|Q[i]|: exact after NewWeights, SyncViews and slow applies
	wraps map[int]int64 // element → net wrap count k ≠ 0
}

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.Q) }

// scale is 2^−Exp as a float32; multiplying by it is exact.
func (t *Tensor) scale() float32 { return float32(math.Ldexp(1, -t.Exp)) }

// Weights is a model's parameters: base weights quantised once at run start,
// plus every update applied since, as exact integer additions.
type Weights struct {
	Tensors []*Tensor
	n       uint64 // length of the perturbation index space
}

const (
	// fracBits fixes the grid: a tensor whose largest |w| is below 2^k gets
	// Exp = fracBits − k, so |Q| < 2^28 at start and weights may grow 8× before int32 wraps.
	fracBits = 28
	// minRangeExp floors k so that every tensor, including all-zero and tiny
	// ones (biases), can grow to |w| < 2^(31−fracBits+minRangeExp) = 2 on a grid
	// no coarser than 2^−30.
	minRangeExp = -2
	// alignElems aligns every tensor's stream offset to whole Philox blocks.
	alignElems = 128
)

// NewWeights quantises the base weights onto each tensor's grid and takes
// ownership of spec.Data as the tensor's view. The tensor order, names and
// shapes define the layout; every peer must pass the same.
func NewWeights(specs []TensorSpec) (*Weights, error) {
	w := &Weights{}
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		n := 1
		for _, d := range s.Shape {
			if d <= 0 {
				return nil, fmt.Errorf("zo: tensor %q: bad shape %v", s.Name, s.Shape)
			}
			n *= d
		}
		if n != len(s.Data) {
			return nil, fmt.Errorf("zo: tensor %q: shape %v holds %d elements, data has %d", s.Name, s.Shape, n, len(s.Data))
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("zo: tensor %q appears twice", s.Name)
		}
		seen[s.Name] = true
		var m float32
		for _, v := range s.Data {
			if v != v || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("zo: tensor %q: weight is not finite", s.Name)
			}
			m = max(m, float32(math.Abs(float64(v))))
		}
		_, k := math.Frexp(float64(m)) // m < 2^k
		k = max(k, minRangeExp)
		t := &Tensor{
			Name: s.Name, Shape: append([]int(nil), s.Shape...), Offset: w.n,
			Exp: fracBits - k, Q: make([]int32, n), View: s.Data, Trainable: s.Trainable,
		}
		for i, v := range s.Data {
			t.Q[i] = int32(math.RoundToEven(math.Ldexp(float64(v), t.Exp)))
			t.qmax = max(t.qmax, absQ(t.Q[i]))
		}
		w.Tensors = append(w.Tensors, t)
		w.n += (uint64(n) + alignElems - 1) / alignElems * alignElems
	}
	w.SyncViews()
	return w, nil
}

// SyncViews re-derives every float32 view from the canonical weights, and
// each tensor's bound on max|Q| with it (required after overwriting Q).
func (w *Weights) SyncViews() { w.syncViews(false) }

// syncViews passes over every element of the selected tensors anyway, so it
// also recomputes their bounds on max|Q| exactly.
func (w *Weights) syncViews(trainableOnly bool) {
	maxes := make([]int64, len(w.Tensors))
	var mu sync.Mutex
	w.forChunks(trainableSel(trainableOnly), func(ti int, t *Tensor, lo, hi int) {
		q := t.Q[lo:hi]
		var m int64
		if t.View != nil {
			sc, v := t.scale(), t.View[lo:hi]
			for i := range q {
				v[i] = float32(q[i]) * sc
				m = max(m, absQ(q[i]))
			}
		} else {
			for i := range q {
				m = max(m, absQ(q[i]))
			}
		}
		mu.Lock()
		maxes[ti] = max(maxes[ti], m)
		mu.Unlock()
	})
	for ti, t := range w.Tensors {
		if !trainableOnly || t.Trainable {
			t.qmax = maxes[ti]
		}
	}
}

// rescan recomputes the exact max|Q| of the tensors sel selects.
func (w *Weights) rescan(sel func(ti int, t *Tensor) bool) {
	maxes := make([]int64, len(w.Tensors))
	picked := make([]bool, len(w.Tensors))
	for ti, t := range w.Tensors {
		picked[ti] = sel(ti, t)
	}
	var mu sync.Mutex
	w.forChunks(func(ti int, _ *Tensor) bool { return picked[ti] }, func(ti int, t *Tensor, lo, hi int) {
		var m int64
		for _, q := range t.Q[lo:hi] {
			m = max(m, absQ(q))
		}
		mu.Lock()
		maxes[ti] = max(maxes[ti], m)
		mu.Unlock()
	})
	for ti, t := range w.Tensors {
		if picked[ti] {
			t.qmax = maxes[ti]
		}
	}
}

// absQ is |q| without int32 overflow at −2^31.
func absQ(q int32) int64 {
	v := int64(q)
	return max(v, -v)
}

// Overflow reports how many elements (and in how many tensors) hold a true
// value outside int32: the update set applied has left the representable
// range. It is a function of the set, so every peer holding the same set
// reaches the same verdict; callers must then refuse to train, checkpoint or
// export, until removals (an exclusion) bring it back to zero.
func (w *Weights) Overflow() (tensors, elements int) {
	for _, t := range w.Tensors {
		if len(t.wraps) > 0 {
			tensors++
			elements += len(t.wraps)
		}
	}
	return tensors, elements
}

// chunkElems is the unit of parallel work: large enough to amortise scheduling,
// small enough (64 KiB of Q) to stay in L2 while every update of a batch is added.
const chunkElems = 16384

// trainableSel selects the trainable tensors, or every tensor.
func trainableSel(trainable bool) func(int, *Tensor) bool {
	return func(_ int, t *Tensor) bool { return !trainable || t.Trainable }
}

// forChunks runs fn over every chunk of every tensor that sel selects on
// GOMAXPROCS goroutines. Chunks are disjoint, so the result does not depend on
// scheduling.
func (w *Weights) forChunks(sel func(ti int, t *Tensor) bool, fn func(ti int, t *Tensor, lo, hi int)) {
	type job struct {
		ti, lo, hi int
	}
	var jobs []job
	for ti, t := range w.Tensors {
		if !sel(ti, t) {
			continue
		}
		for lo := 0; lo < t.Len(); lo += chunkElems {
			jobs = append(jobs, job{ti, lo, min(lo+chunkElems, t.Len())})
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	if workers <= 1 {
		for _, j := range jobs {
			fn(j.ti, w.Tensors[j.ti], j.lo, j.hi)
		}
		return
	}
	next := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range next {
				fn(j.ti, w.Tensors[j.ti], j.lo, j.hi)
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
}

// Hash is the weights hash peers compare: SHA-256 over a domain tag and, per
// tensor in layout order, the SHA-256 of (name, shape, Exp, Q as little-endian int32).
func (w *Weights) Hash() [32]byte {
	sums := make([][32]byte, len(w.Tensors))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, t := range w.Tensors {
		sem <- struct{}{}
		wg.Go(func() {
			sums[i] = t.hash()
			<-sem
		})
	}
	wg.Wait()
	h := sha256.New()
	h.Write([]byte("zopeer/weights/v1\x00"))
	for _, s := range sums {
		h.Write(s[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (t *Tensor) hash() [32]byte { return t.hashOf(LittleEndianInt32s(t.Q)) }

// hashOf is the tensor's hash were its Q the little-endian int32s q.
func (t *Tensor) hashOf(q []byte) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(len(t.Name)))
	h.Write(b[:4])
	h.Write([]byte(t.Name))
	binary.BigEndian.PutUint32(b[:4], uint32(len(t.Shape)))
	h.Write(b[:4])
	for _, d := range t.Shape {
		binary.BigEndian.PutUint64(b[:], uint64(d))
		h.Write(b[:])
	}
	binary.BigEndian.PutUint32(b[:4], uint32(int32(t.Exp)))
	h.Write(b[:4])
	h.Write(q)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// HashOf is the weights hash (Hash) the weights would have with raw as
// every tensor's Q, in layout order, as little-endian int32s (the canonical
// layout of docs/PROTOCOL.md §5.1): a snapshot is checked before it is
// installed. raw must hold exactly 4 bytes per element.
func (w *Weights) HashOf(raw []byte) ([32]byte, error) {
	if err := w.checkRaw(raw); err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	h.Write([]byte("zopeer/weights/v1\x00"))
	for _, t := range w.Tensors {
		s := t.hashOf(raw[:4*t.Len()])
		h.Write(s[:])
		raw = raw[4*t.Len():]
	}
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

// checkRaw checks that raw holds 4 bytes per element of the layout.
func (w *Weights) checkRaw(raw []byte) error {
	n := 0
	for _, t := range w.Tensors {
		n += 4 * t.Len()
	}
	if len(raw) != n {
		return fmt.Errorf("zo: %d weight bytes for a layout of %d", len(raw), n)
	}
	return nil
}

// SetQ overwrites every tensor's Q from raw (HashOf's layout) and re-derives
// the views and bounds (SyncViews). Only into weights whose Overflow is zero
// (see Tensor).
func (w *Weights) SetQ(raw []byte) error {
	if err := w.checkRaw(raw); err != nil {
		return err
	}
	for _, t := range w.Tensors {
		for i := range t.Q {
			t.Q[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		raw = raw[4*t.Len():]
	}
	w.SyncViews()
	return nil
}

// LittleEndianInt32s returns q's bytes in little-endian order, without copying
// on little-endian machines.
func LittleEndianInt32s(q []int32) []byte {
	if len(q) == 0 {
		return nil
	}
	if nativeLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&q[0])), 4*len(q))
	}
	b := make([]byte, 4*len(q))
	for i, v := range q {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
