// Package blas picks the matrix-multiply backend for the model's forward
// passes: OpenBLAS, loaded at run time when the machine has it, else gonum's
// pure Go. Loading at run time keeps the binary free of cgo and of OpenBLAS
// headers; only the float32 GEMM is routed to OpenBLAS because it is the one
// routine the forward pass spends its time in.
package blas

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/tensor"
)

// Backend describes the implementation in use.
type Backend struct {
	Name     string // "openblas" or "gonum"
	Library  string // path of the loaded shared library, if any
	CoreName string // OpenBLAS's kernel family, e.g. "Cooperlake"
	Config   string // OpenBLAS build configuration
}

// Environment variables that steer the choice.
const (
	// EnvBackend forces a backend: "go" (pure Go), "openblas" (warn if it
	// cannot be loaded) or "auto" (default).
	EnvBackend = "ZOPEER_BLAS"
	// EnvLibrary names the OpenBLAS shared library to load.
	EnvLibrary = "ZOPEER_OPENBLAS_LIB"
	// envCoreType is read by OpenBLAS once, when it is loaded.
	envCoreType = "OPENBLAS_CORETYPE"
)

var (
	once    sync.Once
	impl    tensor.BLAS
	backend Backend
)

// Impl returns the BLAS to hand to gorgonia (G.Use) and to call directly,
// loading OpenBLAS on first use.
func Impl() tensor.BLAS {
	once.Do(setup)
	return impl
}

// Current describes the backend Impl returns.
func Current() Backend {
	once.Do(setup)
	return backend
}

func setup() {
	impl, backend = gonum.Implementation{}, Backend{Name: "gonum"}
	mode := strings.ToLower(os.Getenv(EnvBackend))
	if mode == "go" || mode == "gonum" {
		slog.Info("blas: using pure-Go gonum matmul", "reason", EnvBackend+"="+mode)
		return
	}
	o, b, err := loadOpenBLAS(libraryCandidates())
	if err != nil {
		slog.Warn("blas: OpenBLAS not available, using pure-Go gonum matmul (10-20× slower); install libopenblas0-pthread", "err", err)
		return
	}
	impl, backend = o, b
	slog.Info("blas: using OpenBLAS", "lib", b.Library, "core", b.CoreName)
}

func libraryCandidates() []string {
	if p := os.Getenv(EnvLibrary); p != "" {
		return []string{p}
	}
	return []string{
		"libopenblas.so.0", "libopenblas.so",
		"/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
		"/usr/lib64/libopenblas.so.0", "/usr/local/lib/libopenblas.so.0", "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
		"libopenblas.dylib",
	}
}

// cblas constants (row-major API).
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

// openBLAS is gonum's implementation with SGEMM replaced. OpenBLAS runs
// single-threaded and Sgemm splits large products across goroutines instead:
// OpenBLAS's own threads spin after each call and then compete with the Go
// code between matmuls (norms, softmax, activations) for the same cores.
type openBLAS struct {
	gonum.Implementation
	sgemm  func(order, tA, tB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	fsgemm uintptr // sgemm_, the Fortran interface (0 if absent): see callFortran
}

func cblasOp(t gblas.Transpose) int32 {
	if t == gblas.NoTrans {
		return cblasNoTrans
	}
	return cblasTrans
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C in row-major order. Like
// gonum it panics on inconsistent arguments: C code would corrupt memory.
func (o openBLAS) Sgemm(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ar, ac := m, k
	if tA != gblas.NoTrans {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB != gblas.NoTrans {
		br, bc = n, k
	}
	if k == 0 || lda < max(1, ac) || ldb < max(1, bc) || ldc < max(1, n) ||
		len(a) < (ar-1)*lda+ac || len(b) < (br-1)*ldb+bc || len(c) < (m-1)*ldc+n {
		// Degenerate or inconsistent: gonum checks and handles these.
		o.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if max(m, n, k, lda, ldb, ldc) > 1<<31-1 {
		panic(fmt.Sprintf("blas: sgemm dimension exceeds int32: m=%d n=%d k=%d", m, n, k))
	}
	p := runtime.GOMAXPROCS(0)
	if p == 1 || m*n*k < splitWork {
		o.call(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// Split C into p blocks of rows (or of columns when it is short), one
	// goroutine and one single-threaded OpenBLAS call each.
	var wg sync.WaitGroup
	byRows := m >= 8*p
	parts := p
	for i := range parts {
		if byRows {
			lo, hi := m*i/parts, m*(i+1)/parts
			aOff := lo * lda
			if tA != gblas.NoTrans {
				aOff = lo
			}
			wg.Go(func() { o.call(tA, tB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc) })
			continue
		}
		lo, hi := n*i/parts, n*(i+1)/parts
		bOff := lo
		if tB != gblas.NoTrans {
			bOff = lo * ldb
		}
		wg.Go(func() { o.call(tA, tB, m, hi-lo, k, alpha, a, lda, b[bOff:], ldb, beta, c[lo:], ldc) })
	}
	wg.Wait()
}

// splitWork is the multiply-add count above which Sgemm runs on all CPUs
// (≈0.1 ms of work on one core): attention's per-head products stay whole.
const splitWork = 1 << 24

func (o openBLAS) call(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if o.fsgemm != 0 {
		o.callFortran(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	o.sgemm(cblasRowMajor, cblasOp(tA), cblasOp(tB), int32(m), int32(n), int32(k),
		alpha, &a[0], int32(lda), &b[0], int32(ldb), beta, &c[0], int32(ldc))
}
