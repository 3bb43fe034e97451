package tokenizer

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func gpt2(t testing.TB) *Tokenizer {
	t.Helper()
	return loadVariant(t, "gpt2", nil)
}

func TestLoadGzip(t *testing.T) {
	tok, err := Load("testdata/gpt2.tokenizer.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.VocabSize(); got != 50257 {
		t.Errorf("VocabSize = %d, want 50257", got)
	}
	if id, ok := tok.TokenID("<|endoftext|>"); !ok || id != 50256 {
		t.Errorf("TokenID(<|endoftext|>) = %d, %v", id, ok)
	}
	if _, err := Load("testdata/missing.json"); err == nil || !strings.HasPrefix(err.Error(), "tokenizer: ") {
		t.Errorf("Load(missing) error = %v", err)
	}
}

func TestCheckModelVocab(t *testing.T) {
	tok := gpt2(t)
	for _, tc := range []struct {
		model int
		ok    bool
	}{{50257, true}, {50304, true}, {50256, false}, {32000, false}} {
		err := tok.CheckModelVocab(tc.model)
		if (err == nil) != tc.ok {
			t.Errorf("CheckModelVocab(%d) = %v, want ok=%v", tc.model, err, tc.ok)
		}
	}
}

func TestDecodeUnknownID(t *testing.T) {
	tok := gpt2(t)
	for _, id := range []int{-1, 50257} {
		if _, err := tok.Decode([]int{464, id}, false); err == nil {
			t.Errorf("Decode with id %d: no error", id)
		}
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	if _, err := gpt2(t).Encode("ok\xffno", false); err == nil {
		t.Error("Encode of invalid UTF-8: no error")
	}
}

// Byte-level decoding of a split multi-byte character follows Rust's
// from_utf8_lossy: one U+FFFD per maximal ill-formed subsequence.
func TestDecodeLossy(t *testing.T) {
	tok := gpt2(t)
	ids, err := tok.Encode("€", false) // E2 82 AC
	if err != nil {
		t.Fatal(err)
	}
	var firstTwo []int
	for _, b := range []byte{0xE2, 0x82} {
		id, ok := tok.TokenID(string(byteChar[b]))
		if !ok {
			t.Fatalf("no token for byte %x", b)
		}
		firstTwo = append(firstTwo, id)
	}
	if got, _ := tok.Decode(firstTwo, false); got != "\uFFFD" {
		t.Errorf("Decode(E2 82) = %q, want one U+FFFD", got)
	}
	if got, _ := tok.Decode(append(append(append([]int(nil), ids...), firstTwo[0]), ids...), false); got != "€\uFFFD€" {
		t.Errorf("Decode(€ E2 €) = %q", got)
	}
}

func TestToValidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"abc":               "abc",
		"\xE2\x82":          "\uFFFD",
		"\xE2\x82x":         "\uFFFDx",
		"\xff\xfe":          "\uFFFD\uFFFD",
		"\xED\xA0\x80":      "\uFFFD\uFFFD\uFFFD", // surrogate: E D then A0 is out of range
		"\xF0\x9F\x98":      "\uFFFD",
		"a\xF0\x9F\x98\x80": "a😀",
		"\xC0\xAF":          "\uFFFD\uFFFD",
	} {
		if got := toValidUTF8([]byte(in)); got != want {
			t.Errorf("toValidUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// The Metaspace decoder drops every "▁" of the first token, as the Rust
// implementation does (its unit test: ["▁Hey", "▁friend!"] -> "Hey friend!").
func TestMetaspaceDecoder(t *testing.T) {
	d := decMetaspace{replacement: '▁', scheme: prependAlways}
	if got := strings.Join(d.decode([]string{"▁Hey", "▁friend!"}), ""); got != "Hey friend!" {
		t.Errorf("always: %q", got)
	}
	if got := strings.Join(d.decode([]string{"▁▁a▁", "▁b"}), ""); got != "a b" {
		t.Errorf("first token: %q", got)
	}
	d.scheme = prependNever
	if got := strings.Join(d.decode([]string{"▁Hey", "▁friend!"}), ""); got != " Hey friend!" {
		t.Errorf("never: %q", got)
	}
}

// Metaspace with split=true cuts before each "▁", keeping runs of "▁"
// apart, like the Rust unit test "Hey   friend!".
func TestMetaspaceSplit(t *testing.T) {
	m := metaspace{replacement: '▁', scheme: prependAlways, split: true}
	got, err := m.preTokenize([]piece{{"Hey   friend!", true}})
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, p := range got {
		words = append(words, p.s)
	}
	if want := "▁Hey|▁|▁|▁friend!"; strings.Join(words, "|") != want {
		t.Errorf("got %q, want %q", strings.Join(words, "|"), want)
	}
}

// override returns the gpt2 file with some top-level keys replaced.
func override(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func TestAddedTokenStrip(t *testing.T) {
	tok := loadVariant(t, "gpt2", override("added_tokens",
		`[{"id":50256,"content":"<|endoftext|>","single_word":false,"lstrip":true,"rstrip":true,"normalized":false,"special":true}]`))
	got, err := tok.Encode("a  <|endoftext|>  b", false)
	if err != nil {
		t.Fatal(err)
	}
	// Both runs of spaces go to the added token: "a", <eot>, "b".
	want := []int{64, 50256, 65}
	if !equalInts(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// tinyBase is a minimal valid tokenizer.json, as a map of its keys.
func tinyBase(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	err := json.Unmarshal([]byte(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
		"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
		"model":{"type":"BPE","dropout":null,"unk_token":null,"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`), &m)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTinyBase(t *testing.T) {
	data, _ := json.Marshal(tinyBase(t))
	tok, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	// No decoder: tokens are joined with spaces, as in Hugging Face.
	ids, _ := tok.Encode("abba", false)
	if got, _ := tok.Decode(ids, false); !equalInts(ids, []int{2, 1, 0}) || got != "ab b a" {
		t.Errorf("Encode(abba) = %v, decoded %q", ids, got)
	}
}

func TestUnsupported(t *testing.T) {
	for name, kv := range map[string][]string{
		"model type":         {"model", `{"type":"WordPiece","vocab":{}}`},
		"dropout":            {"model", `{"type":"BPE","dropout":0.1,"vocab":{},"merges":[]}`},
		"unknown model key":  {"model", `{"type":"BPE","vocab":{},"merges":[],"new_option":1}`},
		"merge not in vocab": {"model", `{"type":"BPE","vocab":{"a":0},"merges":["a b"]}`},
		"normalizer":         {"normalizer", `{"type":"Lowercase"}`},
		"pre-tokenizer":      {"pre_tokenizer", `{"type":"Whitespace"}`},
		"split behavior":     {"pre_tokenizer", `{"type":"Split","pattern":{"String":" "},"behavior":"Contiguous","invert":false}`},
		"bad regex":          {"pre_tokenizer", `{"type":"Split","pattern":{"Regex":"(("},"behavior":"Isolated","invert":false}`},
		"unknown field":      {"pre_tokenizer", `{"type":"ByteLevel","add_prefix_space":false,"frobnicate":true}`},
		"decoder":            {"decoder", `{"type":"WordPiece","prefix":"##"}`},
		"post-processor":     {"post_processor", `{"type":"BertProcessing","sep":["[SEP]",102],"cls":["[CLS]",101]}`},
		"template pair only": {"post_processor", `{"type":"TemplateProcessing","single":[{"Sequence":{"id":"B","type_id":0}}],"pair":[],"special_tokens":{}}`},
		"truncation":         {"truncation", `{"max_length":512}`},
		"single_word":        {"added_tokens", `[{"id":50256,"content":"<|endoftext|>","single_word":true,"lstrip":false,"rstrip":false,"normalized":false,"special":true}]`},
		"top-level key":      {"something_new", `{}`},
	} {
		t.Run(name, func(t *testing.T) {
			base := tinyBase(t)
			base[kv[0]] = json.RawMessage(kv[1])
			data, _ := json.Marshal(base)
			_, err := Parse(data)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Errorf("error %q does not name its origin", err)
			}
		})
	}
}

// A Llama BOS added after the sequence as well checks that templates put
// special tokens on both sides.
func TestTemplateBothSides(t *testing.T) {
	tok := loadVariant(t, "llama", override("post_processor", `{"type":"TemplateProcessing",
		"single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],
		"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}}`))
	got, err := tok.Encode("hello", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 22172, 2}; !equalInts(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// FuzzByteLevelRoundTrip: byte-level BPE loses nothing, so decoding an
// encoding gives the text back, for GPT-2's and Qwen2's splits.
func FuzzByteLevelRoundTrip(f *testing.F) {
	for _, s := range []string{"", "hello world", "  hello  world  ", "a\n\n\tb", "日本語 😀", "I'm 12345!", "<|endoftext|>x"} {
		f.Add(s)
	}
	toks := []*Tokenizer{gpt2(f), loadVariant(f, "gpt2", override(
		"pre_tokenizer", `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}`))}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, tok := range toks {
			ids, err := tok.Encode(s, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tok.Decode(ids, false)
			if err != nil {
				t.Fatal(err)
			}
			if got != s {
				t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, got, ids)
			}
		}
	})
}

// The Rust library's own ByteFallback unit tests: an invalid run of byte
// tokens becomes one U+FFFD per byte (tokenizers.js differs here, so these
// are not in expected.json).
func TestByteFallbackDecoder(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"Hey", "friend!"}, []string{"Hey", "friend!"}},
		{[]string{"<0x61>"}, []string{"a"}},
		{[]string{"<0xE5>"}, []string{"�"}},
		{[]string{"<0xE5>", "<0x8f>"}, []string{"�", "�"}},
		{[]string{"<0xE5>", "<0x8f>", "<0xab>"}, []string{"叫"}},
		{[]string{"<0xE5>", "<0x8f>", "<0xab>", "a"}, []string{"叫", "a"}},
		{[]string{"<0xE5>", "<0x8f>", "a"}, []string{"�", "�", "a"}},
	} {
		if got := (decByteFallback{}).decode(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("decode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Through the whole Llama decoder: the first three bytes of "😀".
	tok := loadVariant(t, "llama", nil)
	ids, err := tok.Encode("😀", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tok.Decode(ids[:len(ids)-1], false); got != strings.Repeat("\uFFFD", len(ids)-2) {
		t.Errorf("Decode(%v) = %q", ids[:len(ids)-1], got)
	}
}

// The example of Hugging Face's SplitDelimiterBehavior documentation.
func TestSplitBehaviors(t *testing.T) {
	for _, tc := range []struct {
		b      behavior
		invert bool
		want   string
	}{
		{removed, false, "The|final|countdown"},
		{isolated, false, "The|-|final|-|-|countdown"},
		{mergedWithPrevious, false, "The-|final-|-|countdown"},
		{mergedWithNext, false, "The|-final|-|-countdown"},
		{removed, true, "-|-|-"},
	} {
		sp := split{literal: "-", behavior: tc.b, invert: tc.invert}
		got, err := sp.preTokenize([]piece{{"The-final--countdown", true}})
		if err != nil {
			t.Fatal(err)
		}
		var words []string
		for _, p := range got {
			words = append(words, p.s)
		}
		if strings.Join(words, "|") != tc.want {
			t.Errorf("behavior %d invert %v: %q, want %q", tc.b, tc.invert, strings.Join(words, "|"), tc.want)
		}
	}
}

func TestBPEOptions(t *testing.T) {
	encode := func(model, text string) []int {
		t.Helper()
		base := tinyBase(t)
		base["model"] = json.RawMessage(model)
		data, _ := json.Marshal(base)
		tok, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := tok.Encode(text, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	const vocab = `"vocab":{"<unk>":0,"a":1,"b":2,"c":3,"ab":4,"abc":5}`
	for _, tc := range []struct {
		model, text string
		want        []int
	}{
		{`{"type":"BPE",` + vocab + `,"merges":["a b"]}`, "abc", []int{4, 3}},
		// ignore_merges: a word in the vocabulary is one token, merges or not.
		{`{"type":"BPE",` + vocab + `,"merges":["a b"],"ignore_merges":true}`, "abc", []int{5}},
		{`{"type":"BPE",` + vocab + `,"merges":[["a","b"]],"ignore_merges":true}`, "abca", []int{4, 3, 1}},
		// Unknown characters: dropped without unk_token, one <unk> each, or
		// one per run with fuse_unk.
		{`{"type":"BPE",` + vocab + `,"merges":[]}`, "xxa", []int{1}},
		{`{"type":"BPE",` + vocab + `,"merges":[],"unk_token":"<unk>"}`, "xxaxy", []int{0, 0, 1, 0, 0}},
		{`{"type":"BPE",` + vocab + `,"merges":[],"unk_token":"<unk>","fuse_unk":true}`, "xxaxy", []int{0, 1, 0}},
	} {
		if got := encode(tc.model, tc.text); !equalInts(got, tc.want) {
			t.Errorf("%s on %q = %v, want %v", tc.model, tc.text, got, tc.want)
		}
	}
}
