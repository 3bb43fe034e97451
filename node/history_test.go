package node

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// readHistory parses home's history file.
func readHistory(t *testing.T, home string) []Point {
	t.Helper()
	f, err := os.Open(filepath.Join(home, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ps []Point
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p Point
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("history line %q: %v", sc.Text(), err)
		}
		ps = append(ps, p)
	}
	return ps
}

// `zopeer train` writes one history point at the start and one per
// evaluation, with the updates, the train loss since the previous point and
// the forward passes; a second invocation on the same home continues it.
func TestTrainWritesHistory(t *testing.T) {
	ctx := context.Background()
	s := Defaults
	s.Home = t.TempDir()
	s.Steps, s.Samples, s.BatchSize, s.EvalEvery, s.CkptEvery = 4, 3, 2, 2, 0
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		r, err := OpenRun(ctx, s, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		_, after, err := r.Train(ctx)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The second invocation's starting point repeats the first's last
		// (same updates, same loss) and is not written again.
		ps := readHistory(t, s.Home)
		if len(ps) != 3+2*(run-1) {
			t.Fatalf("after invocation %d: %d points, want %d", run, len(ps), 3+2*(run-1))
		}
		type want struct {
			updates, forwards uint64
			train             bool
		}
		wants := []want{{0, 0, false}, {6, 12, true}, {12, 24, true}, {18, 12, true}, {24, 24, true}}
		for i, p := range ps {
			w := wants[i]
			if p.Updates != w.updates || p.Own != p.Updates || p.Forwards != w.forwards {
				t.Errorf("point %d: updates %d own %d forwards %d, want %+v", i, p.Updates, p.Own, p.Forwards, w)
			}
			if w.train != (p.TrainLoss != nil) || p.TrainLoss != nil && !(*p.TrainLoss > 0) || !(p.EvalLoss > 0) || p.Time <= 0 {
				t.Errorf("point %d: %+v", i, p)
			}
			if i > 0 && p.Time < ps[i-1].Time {
				t.Errorf("time goes back at point %d", i)
			}
		}
		if ps[len(ps)-1].EvalLoss != after {
			t.Errorf("last point's eval loss %v, Train returned %v", ps[len(ps)-1].EvalLoss, after)
		}
	}
}
