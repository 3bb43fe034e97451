package node

import (
	"context"
	"testing"

	"github.com/zopeer/zopeer/model/defaults"
)

// bench runs a cold forward pass and ZO step before it times anything, and
// reports it apart.
func TestBenchWarmsUp(t *testing.T) {
	dir := t.TempDir()
	if err := defaults.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	r, err := Bench(context.Background(), dir, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.WarmupSeconds <= 0 || r.ForwardSeconds <= 0 || r.StepSeconds <= 0 {
		t.Fatalf("%+v: want a warm-up measured apart from the timed passes", r)
	}
}
