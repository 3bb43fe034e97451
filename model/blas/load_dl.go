//go:build (linux || darwin) && (amd64 || arm64)

package blas

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"
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
