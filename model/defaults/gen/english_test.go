package main

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The Bible text as `bible` prints it: headings, numbered verses, wrapped lines.
func TestKJVVerses(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n  2 And the earth was without form, and void; and darkness was upon the face of\nthe deep.\n\n1 Samuel 3\n\n  1 And the child Samuel ministered.\n")
	for i := range 30000 {
		sb.WriteString("  " + strings.Repeat("9", 1+i%3) + " More.\n")
	}
	vs, err := kjvVerses(strings.NewReader(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"In the beginning God created the heaven and the earth.",
		"And the earth was without form, and void; and darkness was upon the face of the deep.",
		"And the child Samuel ministered.", "More."}
	for i, w := range want {
		if vs[i] != w {
			t.Errorf("verse %d: %q, want %q", i, vs[i], w)
		}
	}
	if len(vs) != 30003 {
		t.Errorf("%d verses", len(vs))
	}
	if _, err := kjvVerses(strings.NewReader("  1 Only one.\n")); err == nil {
		t.Error("a partial Bible was accepted")
	}
}

func TestDictdNumberAndCut(t *testing.T) {
	for s, want := range map[string]int{"A": 0, "B": 1, "/": 63, "BA": 64, "Ph": 15*64 + 33} {
		if got, ok := dictdNumber(s); !ok || got != want {
			t.Errorf("%q: %d %v, want %d", s, got, ok, want)
		}
	}
	for _, bad := range []string{"", "a-b", "ü"} {
		if _, ok := dictdNumber(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := cutAt("one two three", 9); got != "one two" {
		t.Errorf("cutAt: %q", got)
	}
	if got := cutAt("ééééé", 5); got != "éé" {
		t.Errorf("cutAt splits a rune: %q", got)
	}
}

// Pretraining windows are ctx bytes of the training part, never of the
// held-out tail.
func TestEnglishWindows(t *testing.T) {
	verses := make([]string, 40000)
	for i := range verses {
		verses[i] = "and it was so"
	}
	c := newEnglishCorpus(verses, 1, 16)
	b, err := c.batch(50)
	if err != nil {
		t.Fatal(err)
	}
	text := string(c.train)
	for _, w := range b {
		var sb strings.Builder
		for _, id := range w {
			sb.WriteByte(byte(id))
		}
		if len(w) != 16 || !strings.Contains(text, sb.String()) {
			t.Fatalf("window %q not from the training text", sb.String())
		}
	}
	if len(c.heldOut) != heldOutBytes {
		t.Errorf("held-out tail of %d bytes", len(c.heldOut))
	}
	r := rand.New(rand.NewPCG(1, 2))
	if w := window(r, []byte("abcd"), 4); len(w) != 4 || w[0] != 'a' {
		t.Errorf("window of a whole source: %v", w)
	}
}
