package tokenizer

import (
	"strings"
	"testing"
)

// benchText is mixed prose, code, numbers and non-Latin text.
var benchText = strings.Repeat("The quick brown fox jumps over the lazy dog. I'm sure they'll see it's 3.14159!\n"+
	"def f(a, b):\n    return a + b  # 12345\n日本語のテキスト、中文文本。 café naïve 😀\n\n", 20)

func benchmarkEncode(b *testing.B, tok *Tokenizer) {
	b.SetBytes(int64(len(benchText)))
	for b.Loop() {
		if _, err := tok.Encode(benchText, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGPT2(b *testing.B)  { benchmarkEncode(b, gpt2(b)) }
func BenchmarkEncodeLlama(b *testing.B) { benchmarkEncode(b, loadVariant(b, "llama", nil)) }

func BenchmarkDecodeGPT2(b *testing.B) {
	tok := gpt2(b)
	ids, err := tok.Encode(benchText, false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchText)))
	for b.Loop() {
		if _, err := tok.Decode(ids, false); err != nil {
			b.Fatal(err)
		}
	}
}
