//go:build (linux || darwin) && (amd64 || arm64)

package blas

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"
	gblas "gonum.org/v1/gonum/blas"
)

// loadOpenBLAS dlopens the first library that loads and resolves its SGEMM.
func loadOpenBLAS(paths []string) (openBLAS, Backend, error) {
	coreType := ensureCoreType()
	var errs []error
	for _, p := range paths {
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sym, err := purego.Dlsym(h, "cblas_sgemm")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		var o openBLAS
		purego.RegisterFunc(&o.sgemm, sym)
		if f, err := purego.Dlsym(h, "sgemm_"); err == nil {
			o.fsgemm = f
		}
		if s, err := purego.Dlsym(h, "openblas_set_num_threads"); err == nil {
			var setThreads func(int32)
			purego.RegisterFunc(&setThreads, s)
			setThreads(1) // see openBLAS
		}
		b := Backend{Name: "openblas", Library: p}
		if s, err := purego.Dlsym(h, "openblas_get_corename"); err == nil {
			var corename func() string
			purego.RegisterFunc(&corename, s)
			b.CoreName = corename()
		}
		if s, err := purego.Dlsym(h, "openblas_get_config"); err == nil {
			var config func() string
			purego.RegisterFunc(&config, s)
			b.Config = strings.TrimSpace(config())
		}
		if coreType != "" && !strings.EqualFold(b.CoreName, coreType) {
			slog.Warn("blas: OpenBLAS ignored "+envCoreType+"; matmuls may be several times slower",
				"want", coreType, "core", b.CoreName)
		}
		return o, b, nil
	}
	// The first error names the usual library; the rest repeat "not found".
	return openBLAS{}, Backend{}, fmt.Errorf("blas: cannot load OpenBLAS (tried %d names): %w", len(paths), errs[0])
}

// ensureCoreType sets OPENBLAS_CORETYPE from the CPU's features unless the
// user set it, and returns the value in force. Debian's OpenBLAS 0.3.21 takes
// recent Xeons for "Prescott" and runs 4-7× slower. OpenBLAS reads the
// variable with getenv when it is loaded, so it must reach the C environment
// first: os.Setenv does that only in cgo builds, hence libc's setenv too.
func ensureCoreType() string {
	if v := os.Getenv(envCoreType); v != "" {
		return v
	}
	if runtime.GOARCH != "amd64" {
		return ""
	}
	var v string
	switch {
	case cpu.X86.HasAVX512BF16:
		v = "COOPERLAKE"
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ:
		v = "SKYLAKEX"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		v = "HASWELL"
	default:
		return ""
	}
	_ = os.Setenv(envCoreType, v) // cannot fail for a valid name
	if err := cSetenv(envCoreType, v); err != nil {
		slog.Warn("blas: cannot set "+envCoreType+" for OpenBLAS", "err", err)
	}
	return v
}

func cSetenv(k, v string) error {
	var libc uintptr
	var err error
	for _, name := range []string{"libc.so.6", "/usr/lib/libSystem.B.dylib"} {
		if libc, err = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	sym, err := purego.Dlsym(libc, "setenv")
	if err != nil {
		return err
	}
	var setenv func(k, v string, overwrite int32) int32
	purego.RegisterFunc(&setenv, sym)
	if setenv(k, v, 1) != 0 {
		return errors.New("setenv failed")
	}
	return nil
}

// fortranArgs are sgemm_'s scalar arguments, all passed by reference; pooled
// so that a call allocates nothing.
type fortranArgs struct {
	ta, tb                 byte
	m, n, k, lda, ldb, ldc int32
	alpha, beta            float32
}

var fortranPool = sync.Pool{New: func() any { return new(fortranArgs) }}

// callFortran is call through the Fortran interface sgemm_, whose arguments
// are all pointers: purego.SyscallN then calls it without reflection (the
// cblas entry takes floats by value and needs purego's reflective
// RegisterFunc: about 0.5 µs and 12 allocations per call). Row-major
// C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the operands swap.
func (o openBLAS) callFortran(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	p := fortranPool.Get().(*fortranArgs)
	p.ta, p.tb = fortranOp(tA), fortranOp(tB)
	p.m, p.n, p.k, p.lda, p.ldb, p.ldc = int32(m), int32(n), int32(k), int32(lda), int32(ldb), int32(ldc)
	p.alpha, p.beta = alpha, beta
	purego.SyscallN(o.fsgemm,
		uintptr(unsafe.Pointer(&p.tb)), uintptr(unsafe.Pointer(&p.ta)),
		uintptr(unsafe.Pointer(&p.n)), uintptr(unsafe.Pointer(&p.m)), uintptr(unsafe.Pointer(&p.k)),
		uintptr(unsafe.Pointer(&p.alpha)),
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&p.ldb)),
		uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&p.lda)),
		uintptr(unsafe.Pointer(&p.beta)),
		uintptr(unsafe.Pointer(&c[0])), uintptr(unsafe.Pointer(&p.ldc)))
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
	fortranPool.Put(p)
}

func fortranOp(t gblas.Transpose) byte {
	if t == gblas.NoTrans {
		return 'N'
	}
	return 'T'
}
