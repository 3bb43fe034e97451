package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// windowCount is the number of windows an entry of n tokens (targets from
// 1) becomes in a context of c with the given overlap: the first window
// predicts c-1 tokens, each later one c-max(overlap,1) new ones.
func windowCount(n, c, overlap int) int {
	if n <= c {
		return 1
	}
	step := c - max(overlap, 1)
	return 1 + (n-c+step-1)/step
}

// Windows cover every target of an entry exactly once, in order, each
// window within the context, and the counts say what happened.
func TestWindows(t *testing.T) {
	for _, c := range []int{2, 5, 8} {
		for overlap := 0; overlap <= c/2; overlap++ {
			for _, n := range []int{1, 2, c - 1, c, c + 1, 2 * c, 3*c + 2, 50} {
				t.Run(fmt.Sprintf("c%d/o%d/n%d", c, overlap, n), func(t *testing.T) {
					text := strings.Repeat("abcdefghij", 6)[:n]
					d, sk, err := readTextWith(strings.NewReader(text+"\n\nxy\n"), stubEncoder{}, c, Options{Window: true, Overlap: overlap})
					if n == 1 {
						// One token predicts nothing: skipped, not windowed.
						if err != nil || sk.NoTargets != 1 || d.Len() != 1 {
							t.Fatalf("one-token entry: %v %+v %d", err, sk, d.Len())
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					want := windowCount(n, c, overlap)
					if got := d.Len() - 1; got != want {
						t.Fatalf("%d windows, want %d", got, want)
					}
					st := d.Stats()
					split := 0
					if n > c {
						split = 1
					}
					if st.Entries != 2 || st.Split != split || st.Windows != split*want || st.Truncated != 0 {
						t.Errorf("stats %+v", st)
					}
					// Concatenating every window's targets gives the text
					// from its second byte on; each window starts with the
					// tokens just before its first target.
					var targets []byte
					for i := range want {
						r := d.Record(i)
						if len(r.Tokens) > c || r.LossStart < 1 || r.LossStart >= len(r.Tokens) {
							t.Fatalf("window %d: %d tokens, loss from %d", i, len(r.Tokens), r.LossStart)
						}
						if i > 0 && r.LossStart != max(overlap, 1) {
							t.Errorf("window %d: loss from %d, want %d", i, r.LossStart, max(overlap, 1))
						}
						off := len(targets) + 1 - r.LossStart
						for j, tk := range r.Tokens {
							if byte(tk) != text[off+j] {
								t.Fatalf("window %d token %d is %q, want %q", i, j, rune(tk), text[off+j])
							}
						}
						for _, tk := range r.Tokens[r.LossStart:] {
							targets = append(targets, byte(tk))
						}
					}
					if string(targets) != text[1:] {
						t.Errorf("targets %q, want %q", targets, text[1:])
					}
				})
			}
		}
	}
}

// Without windows a long entry is cut and counted; prompt/completion
// windows start their targets at the completion; windows of an entry stay
// on one side of Split.
func TestTruncatedCountsAndPairWindows(t *testing.T) {
	d, _, err := readJSONLWith(strings.NewReader(`{"text":"abcdefghij"}`+"\n"+`{"text":"abc"}`+"\n"), stubEncoder{}, 4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Entries != 2 || st.Truncated != 1 || st.DroppedTokens != 6 || st.Split != 0 || st.Windows != 0 {
		t.Errorf("stats %+v", st)
	}
	d, _, err = readJSONLWith(strings.NewReader(`{"prompt":"ab","completion":"cdefghij"}`+"\n"), stubEncoder{}, 4, Options{Window: true, Overlap: 2})
	if err != nil {
		t.Fatal(err)
	}
	// 10 tokens, context 4, overlap 2: [abcd] from 2, [cdef] from 2, [efgh] from 2, [ghij] from 2.
	if d.Len() != 4 {
		t.Fatalf("%d windows, want 4", d.Len())
	}
	for i := range d.Len() {
		if r := d.Record(i); r.LossStart != 2 || r.Tokens[0] != int('a')+2*i {
			t.Errorf("window %d: %v from %d", i, r.Tokens, r.LossStart)
		}
	}
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, `{"text":"entry %d %s"}`+"\n", i, strings.Repeat("x", 20))
	}
	d, _, err = readJSONLWith(strings.NewReader(sb.String()), stubEncoder{}, 8, Options{Window: true})
	if err != nil {
		t.Fatal(err)
	}
	train, held, err := d.Split(0.3)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[int]bool{}
	for i := range held.Len() {
		lines[held.Record(i).Line] = true
	}
	for i := range train.Len() {
		if lines[train.Record(i).Line] {
			t.Fatalf("entry on line %d has windows on both sides of the split", train.Record(i).Line)
		}
	}
	if len(lines) == 0 || held.Len() == 0 {
		t.Fatal("nothing held out")
	}
}

func TestWindowOptionsChecked(t *testing.T) {
	for _, o := range []int{-1, 5} {
		if _, _, err := readTextWith(strings.NewReader("abc"), stubEncoder{}, 8, Options{Window: true, Overlap: o}); err == nil {
			t.Errorf("overlap %d in a context of 8: no error", o)
		}
	}
	path := filepath.Join(t.TempDir(), "d.txt")
	if err := os.WriteFile(path, []byte("abcdefghij\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _, err := LoadWith(path, stubEncoder{}, 4, Options{Window: true})
	if err != nil || d.Len() != 3 {
		t.Fatalf("LoadWith: %v, %v", d, err)
	}
}
