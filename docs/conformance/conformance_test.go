package conformance

import (
	"bytes"
	"os"
	"testing"
)

// TestVectors regenerates every vector from the Go implementation and
// requires the committed file to match byte for byte: the Go side of the
// conformance kit (check.py is the independent side).
func TestVectors(t *testing.T) {
	want, err := os.ReadFile("vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		a, b := string(got), string(want)
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		lo := max(0, i-200)
		t.Fatalf("vectors.json differs from the implementation at byte %d:\n got …%s…\nwant …%s…\n(after an intended change: go run ./docs/conformance/gen)",
			i, a[lo:min(len(a), i+200)], b[lo:min(len(b), i+200)])
	}
}
