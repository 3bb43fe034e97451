package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

var gpt2Regex = regexp2.MustCompile(`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, regexp2.None)

func regexPieces(t testing.TB, s string) []string {
	runes := []rune(s)
	spans, err := regexSpans(gpt2Regex, runes)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sp := range spans {
		if !sp.match {
			t.Fatalf("%q: regex left %q unmatched", s, string(runes[sp.start:sp.end]))
		}
		out = append(out, string(runes[sp.start:sp.end]))
	}
	return out
}

func checkGPT2Split(t testing.TB, s string) {
	if got, want := gpt2Pieces(s), regexPieces(t, s); !slices.Equal(got, want) {
		t.Fatalf("%q: split %q, regex %q", s, got, want)
	}
}

// Every character up to U+3100 and some beyond, one at a time after a space
// and a letter and in runs, so that each Unicode class decision is compared.
func TestGPT2SplitMatchesRegex(t *testing.T) {
	var sb strings.Builder
	for r := rune(0); r < 0x3100; r++ {
		sb.WriteRune(r)
	}
	for _, r := range []rune{0xFEFF, 0x1F600, 0x1F3FD, 0x200D, 0x10FFFD, 0xE000, 0x1D7CE} {
		sb.WriteRune(r)
	}
	all := sb.String()
	checkGPT2Split(t, all)
	for _, r := range all {
		for _, s := range []string{string(r), " " + string(r), "a" + string(r) + string(r) + "1", "  " + string(r) + " \n "} {
			checkGPT2Split(t, s)
		}
	}
}

func FuzzGPT2Split(f *testing.F) {
	for _, s := range []string{"'s 're 'x", "  hello  world  ", "a\n\n\tb ", "12 ab!! ,", "日本 😀\u00a0\u3000x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			checkGPT2Split(t, s)
		}
	})
}
