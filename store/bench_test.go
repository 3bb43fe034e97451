package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// benchUpdates returns n updates from 64 machines streaming samples in turn,
// the shape of a live run's log.
func benchUpdates(start, n int) []zo.Update {
	us := make([]zo.Update, n)
	for i := range us {
		k := start + i
		us[i] = zo.Update{Machine: uint64(k % 64), Sample: uint64(k / 64), Exp: 120, Code: int8(k%255 - 127)}
	}
	return us
}

// BenchmarkAppend measures durable appends to a disk store; an op is one
// update. disk-B/update is the space the closed store takes per update.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name  string
		batch int
		sync  bool
	}{{"single", 1, false}, {"batch64", 64, false}, {"batch1000", 1000, false}, {"single-syncwrites", 1, true}, {"batch64-syncwrites", 64, true}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			s := reopen(b, dir, WithSyncWrites(c.sync))
			ctx := context.Background()
			b.SetBytes(18) // one update: machine, sample, exp, code
			b.ResetTimer()
			for i := 0; i < b.N; i += c.batch {
				if _, err := s.Append(ctx, benchUpdates(i, min(c.batch, b.N-i))...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			if b.N >= 100_000 {
				b.ReportMetric(float64(diskUsage(b, dir))/float64(b.N), "disk-B/update")
			}
		})
	}
}

// diskUsage is the space dir's files occupy (allocated blocks, so Badger's
// sparse preallocated files count for what they hold).
func diskUsage(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkReplay rebuilds weights from the base and a log of 1024 updates;
// an op is one replay, of a 4.1M- or a 32.9M-parameter model.
func BenchmarkReplay(b *testing.B) {
	for _, c := range []struct{ scale, batch int }{{1000, 64}, {1000, 256}, {8000, 64}, {8000, 256}} {
		scale := c.scale
		b.Run(fmt.Sprintf("params=%.1fM/batch=%d", float64(4112*scale+77)/1e6, c.batch), func(b *testing.B) {
			const n = 1024
			s, _ := openTest(b, true)
			ctx := context.Background()
			if _, err := s.Append(ctx, benchUpdates(0, n)...); err != nil {
				b.Fatal(err)
			}
			// Bytes are weight bytes updated: updates × trainable elements × 4.
			b.SetBytes(n * 4 * int64(4112*scale))
			var ups, els float64
			for b.Loop() {
				b.StopTimer()
				e := newEngine(b, scale)
				b.StartTimer()
				res, err := s.Replay(ctx, e, ReplayOptions{Batch: c.batch})
				if err != nil || res.Applied != n {
					b.Fatal(res.Applied, err)
				}
				ups, els = res.UpdatesPerSec, res.ElementsPerSec
			}
			b.ReportMetric(ups, "updates/s")
			b.ReportMetric(els, "elements/s")
		})
	}
}

// BenchmarkCheckpoint writes a checkpoint of a 32.9M-parameter model (132 MB)
// and loads it back through Replay (verify, load, hash); bytes are file bytes.
func BenchmarkCheckpoint(b *testing.B) {
	const scale = 8000
	ctx := context.Background()
	s, _ := openTest(b, true)
	e := newEngine(b, scale)
	var info CheckpointInfo
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			var err error
			if info, err = s.WriteCheckpoint(ctx, e.Weights(), Summary{}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(info.Size)
	})
	b.Run("load", func(b *testing.B) {
		b.SetBytes(info.Size)
		for b.Loop() {
			res, err := s.Replay(ctx, e, ReplayOptions{})
			if err != nil || res.Checkpoint != info.ID {
				b.Fatal(res.Checkpoint, err)
			}
		}
	})
}
