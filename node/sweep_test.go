package node

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// A sweep reports every pair, each from the same base loss; a sane η lowers
// the loss and a huge one does worse; nothing is written under the home.
func TestSweep(t *testing.T) {
	s := Defaults
	s.Home = t.TempDir()
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		t.Fatal(err)
	}
	s.Steps, s.Samples, s.BatchSize = 3, 4, 4
	ps, err := Sweep(context.Background(), s, []float64{1e-4, 1}, []float64{1e-3}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Before != ps[1].Before || ps[0].UpdatesTried != 12 {
		t.Fatalf("points %+v", ps)
	}
	if !(ps[0].After < ps[0].Before) || !(ps[1].After > ps[0].After) || !(ps[0].MedianAbsG > 0) || math.IsNaN(ps[1].After) {
		t.Errorf("points %+v", ps)
	}
	if _, err := os.Stat(filepath.Join(s.Home, HistoryFile)); err == nil {
		t.Error("sweep wrote a history file")
	}
}
