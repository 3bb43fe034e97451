package dataset

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zopeer/zopeer/model/tokenizer"
)

var tokenizers sync.Map // name -> *tokenizer.Tokenizer, loaded once: they are immutable

func loadTokenizer(t *testing.T, name string) *tokenizer.Tokenizer {
	t.Helper()
	if tok, ok := tokenizers.Load(name); ok {
		return tok.(*tokenizer.Tokenizer)
	}
	tok, err := tokenizer.Load(filepath.Join("..", "tokenizer", "testdata", name+".tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	tokenizers.Store(name, tok)
	return tok
}

func readJSONL(t *testing.T, enc Encoder, contextLen int, lines ...string) (*Dataset, Skipped) {
	t.Helper()
	d, skipped, err := ReadJSONL(strings.NewReader(strings.Join(lines, "\n")), enc, contextLen)
	if err != nil {
		t.Fatal(err)
	}
	return d, skipped
}

func TestJSONLSkips(t *testing.T) {
	tok := loadTokenizer(t, "gpt2")
	d, skipped := readJSONL(t, tok, 1024,
		`{"text": "Hello world, this is a record."}`,
		``,
		`   `,
		`{"text": `,
		`{"text": 5}`,
		`{"prompt": "a"}`,
		`{"text": "x", "prompt": "a", "completion": "b"}`,
		`{"text": ""}`,
		`{"prompt": "Q:", "completion": ""}`,
		"{\"text\": \"bad \xff byte\"}",
		`{"text": "a"}`,
		`{"prompt": "Question: 2+2?\nAnswer:", "completion": " 4", "id": 7}`,
		`["not", "an", "object"]`,
	)
	want := Skipped{Blank: 2, Malformed: 6, Empty: 2, NoTargets: 1}
	got := skipped
	got.Examples = nil
	if !equalSkipped(got, want) {
		t.Errorf("skipped = %+v, want %+v", got, want)
	}
	if len(skipped.Examples) != maxExamples || !strings.HasPrefix(skipped.Examples[0], "line 4: ") {
		t.Errorf("examples = %q", skipped.Examples)
	}
	if d.Len() != 2 {
		t.Fatalf("Len = %d, want 2", d.Len())
	}
	if r := d.Record(0); r.Line != 1 || r.LossStart != 1 {
		t.Errorf("record 0: line %d, loss start %d", r.Line, r.LossStart)
	}
	if r := d.Record(1); r.Line != 12 {
		t.Errorf("record 1: line %d", r.Line)
	}
}

func equalSkipped(a, b Skipped) bool {
	return a.Blank == b.Blank && a.Malformed == b.Malformed && a.Empty == b.Empty && a.NoTargets == b.NoTargets
}

// Records are tokenized exactly as the tokenizer tokenizes their whole text,
// with its post-processor's special tokens (Llama's <s>) and nothing else.
func TestTokenizedAsTokenizer(t *testing.T) {
	for _, name := range []string{"gpt2", "llama"} {
		t.Run(name, func(t *testing.T) {
			tok := loadTokenizer(t, name)
			texts := []string{"  hello  world  ", "line one\nline two", "日本語 😀 café"}
			var lines []string
			for _, s := range texts {
				b, _ := json.Marshal(map[string]string{"text": s})
				lines = append(lines, string(b))
			}
			d, _ := readJSONL(t, tok, 1024, lines...)
			for i, s := range texts {
				want, err := tok.Encode(s, true)
				if err != nil {
					t.Fatal(err)
				}
				if got := d.Record(i).Tokens; !slices.Equal(got, want) {
					t.Errorf("%q: tokens %v, want %v", s, got, want)
				}
			}
			if name == "llama" && d.Record(0).Tokens[0] != 1 {
				t.Errorf("llama record does not start with <s>: %v", d.Record(0).Tokens)
			}
		})
	}
}

func TestPromptCompletion(t *testing.T) {
	tok := loadTokenizer(t, "gpt2")
	for _, tc := range []struct {
		prompt, completion string
		lossStart          int // -1: the length of the prompt's own tokens
	}{
		{"Question: what is 2+2?\nAnswer:", " 4", -1},
		// "wor"+"ld" tokenizes as one token " world", which straddles the
		// boundary and so counts as completion.
		{"hello wor", "ld", 1},
		{"", "text with an empty prompt", 1},
	} {
		b, _ := json.Marshal(map[string]string{"prompt": tc.prompt, "completion": tc.completion})
		d, _ := readJSONL(t, tok, 1024, string(b))
		r := d.Record(0)
		full, _ := tok.Encode(tc.prompt+tc.completion, true)
		if !slices.Equal(r.Tokens, full) {
			t.Errorf("%q+%q: tokens %v, want %v", tc.prompt, tc.completion, r.Tokens, full)
		}
		want := tc.lossStart
		if want < 0 {
			p, _ := tok.Encode(tc.prompt, true)
			want = len(p)
		}
		if r.LossStart != want {
			t.Errorf("%q+%q: loss start %d, want %d (tokens %v)", tc.prompt, tc.completion, r.LossStart, want, r.Tokens)
		}
	}
}

func TestTruncation(t *testing.T) {
	tok := loadTokenizer(t, "gpt2")
	d, skipped := readJSONL(t, tok, 4,
		`{"text": "one two three four five six seven"}`,
		`{"prompt": "one two three four five", "completion": " six"}`,
		`{"prompt": "one two", "completion": " three four five six"}`,
	)
	if skipped.NoTargets != 1 || d.Len() != 2 {
		t.Fatalf("skipped %+v, %d records", skipped, d.Len())
	}
	for i := range d.Len() {
		if n := len(d.Record(i).Tokens); n != 4 {
			t.Errorf("record %d: %d tokens, want 4", i, n)
		}
	}
	if r := d.Record(1); r.LossStart != 2 {
		t.Errorf("loss start %d, want 2", r.LossStart)
	}
	if _, _, err := ReadJSONL(strings.NewReader(`{"text":"a b"}`), tok, 1); err == nil {
		t.Error("context length 1: no error")
	}
}

func TestNothingValid(t *testing.T) {
	tok := loadTokenizer(t, "gpt2")
	for _, src := range []string{"", "\n\n", "{}\nnot json\n"} {
		_, skipped, err := ReadJSONL(strings.NewReader(src), tok, 16)
		if err == nil || !strings.HasPrefix(err.Error(), "dataset: no valid records") {
			t.Errorf("%q: err = %v", src, err)
		}
		if strings.Count(src, "\n") > 0 && skipped.Total() == 0 {
			t.Errorf("%q: nothing counted as skipped", src)
		}
	}
}

func TestText(t *testing.T) {
	tok := loadTokenizer(t, "gpt2")
	src := "First paragraph,\r\n  second line.\r\n\r\n \t \nSecond paragraph.\n\n\n" +
		"bad \xff\nstill bad paragraph\n\nlast one"
	d, skipped, err := ReadText(strings.NewReader(src), tok, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"First paragraph,\n  second line.", "Second paragraph.", "last one"}
	if d.Len() != len(want) || skipped.Malformed != 1 {
		t.Fatalf("%d records, skipped %+v", d.Len(), skipped)
	}
	for i, s := range want {
		ids, _ := tok.Encode(s, true)
		if !slices.Equal(d.Record(i).Tokens, ids) {
			got, _ := tok.Decode(d.Record(i).Tokens, false)
			t.Errorf("record %d = %q, want %q", i, got, s)
		}
	}
	if lines := []int{d.Record(0).Line, d.Record(1).Line, d.Record(2).Line}; !slices.Equal(lines, []int{1, 5, 11}) {
		t.Errorf("lines = %v", lines)
	}
}

func TestLoad(t *testing.T) {
	tok := loadTokenizer(t, "gpt2")
	dir := t.TempDir()
	for name, content := range map[string]string{"a.jsonl": `{"text":"hello there"}`, "b.txt": "hello there\n", "c.csv": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a.jsonl", "b.txt"} {
		if d, _, err := Load(filepath.Join(dir, name), tok, 16); err != nil || d.Len() != 1 {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"c.csv", "missing.jsonl"} {
		if _, _, err := Load(filepath.Join(dir, name), tok, 16); err == nil || !strings.HasPrefix(err.Error(), "dataset: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, _, err := Load(filepath.Join(dir, "missing.jsonl"), tok, 16); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file error does not wrap os.ErrNotExist: %v", err)
	}
}

// stubEncoder gives each text one token per byte, for tests that need many
// records quickly.
type stubEncoder struct{}

func (stubEncoder) Encode(text string, _ bool) ([]int, error) {
	ids := make([]int, len(text))
	for i := range text {
		ids[i] = int(text[i])
	}
	return ids, nil
}

func numbered(t *testing.T, n int) *Dataset {
	t.Helper()
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "{\"text\": \"record number %d\"}\n", i)
	}
	d, _, err := ReadJSONL(strings.NewReader(sb.String()), stubEncoder{}, 64)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type vectors struct {
	Samples []struct {
		Run     string `json:"run"`
		Machine uint64 `json:"machine"`
		N       int    `json:"n"`
		Indices []int  `json:"indices"`
	} `json:"samples"`
	Records []struct {
		Record    map[string]string `json:"record"`
		KeyPrefix string            `json:"key_prefix"`
		HeldOut   bool              `json:"held_out_0.5"`
	} `json:"records"`
}

// testdata/vectors.json comes from testdata/reference.py, written from
// docs/DATA.md independently of this package.
func readVectors(t *testing.T) vectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Samples) == 0 || len(v.Records) == 0 {
		t.Fatal("empty vectors.json")
	}
	return v
}

func TestSampleVectors(t *testing.T) {
	for _, s := range readVectors(t).Samples {
		for k, want := range s.Indices {
			if got := Sample(s.Run, s.Machine, uint64(k), s.N); got != want {
				t.Errorf("Sample(%q, %d, %d, %d) = %d, want %d", s.Run, s.Machine, k, s.N, got, want)
			}
		}
	}
}

func TestContentKeyVectors(t *testing.T) {
	for _, v := range readVectors(t).Records {
		var key [32]byte
		if text, ok := v.Record["text"]; ok {
			key = contentKey("text", text)
		} else {
			key = contentKey("prompt/completion", v.Record["prompt"], v.Record["completion"])
		}
		if got := hex.EncodeToString(key[:8]); got != v.KeyPrefix {
			t.Errorf("%v: key %s, want %s", v.Record, got, v.KeyPrefix)
		}
		d := &Dataset{records: []Record{{key: key}, {key: contentKey("text", "other")}}}
		train, heldOut, err := d.Split(0.5)
		if err != nil {
			continue // the other record is held out too
		}
		if got := slices.ContainsFunc(heldOut.records, func(r Record) bool { return r.key == key }); got != v.HeldOut {
			t.Errorf("%v: held out %v, want %v (train %d)", v.Record, got, v.HeldOut, train.Len())
		}
	}
}

// Every epoch visits every record once, for sizes around powers of four.
func TestSampleIsPermutation(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 257} {
		for epoch := uint64(0); epoch < 2; epoch++ {
			seen := make([]bool, n)
			for pos := range uint64(n) {
				i := Sample("perm", 9, epoch*uint64(n)+pos, n)
				if i < 0 || i >= n || seen[i] {
					t.Fatalf("n=%d epoch %d: index %d out of range or repeated", n, epoch, i)
				}
				seen[i] = true
			}
		}
	}
}

// Runs, machines and epochs get different orders.
func TestSampleOrdersDiffer(t *testing.T) {
	const n = 50
	order := func(run string, machine, epoch uint64) []int {
		var o []int
		for pos := range uint64(n) {
			o = append(o, Sample(run, machine, epoch*n+pos, n))
		}
		return o
	}
	base := order("r", 0, 0)
	identity := make([]int, n)
	for i := range identity {
		identity[i] = i
	}
	for name, o := range map[string][]int{
		"identity": identity, "machine": order("r", 1, 0), "run": order("s", 0, 0), "epoch": order("r", 0, 1),
	} {
		if slices.Equal(base, o) {
			t.Errorf("order equals the %s order", name)
		}
	}
	if !slices.Equal(base, order("r", 0, 0)) {
		t.Error("Sample is not deterministic")
	}
}

func TestSplit(t *testing.T) {
	d := numbered(t, 1000)
	train, heldOut, err := d.Split(0.1)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len()+heldOut.Len() != 1000 || heldOut.Len() < 50 || heldOut.Len() > 150 {
		t.Errorf("split %d/%d", train.Len(), heldOut.Len())
	}
	// The split follows content, not position: reversed input, same held-out set.
	rev := &Dataset{records: slices.Clone(d.records)}
	slices.Reverse(rev.records)
	_, heldOut2, _ := rev.Split(0.1)
	lines := func(d *Dataset) []int {
		var l []int
		for _, r := range d.records {
			l = append(l, r.Line)
		}
		slices.Sort(l)
		return l
	}
	if !slices.Equal(lines(heldOut), lines(heldOut2)) {
		t.Error("held-out set depends on record order")
	}
	if train, heldOut, err := d.Split(0); err != nil || train.Len() != 1000 || heldOut.Len() != 0 {
		t.Errorf("Split(0): %v", err)
	}
	for _, f := range []float64{-0.1, 1, 2} {
		if _, _, err := d.Split(f); err == nil {
			t.Errorf("Split(%v): no error", f)
		}
	}
}

func TestShard(t *testing.T) {
	d := numbered(t, 10)
	var all []int
	for i := range 3 {
		s, err := d.Shard(i, 3)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() < 3 || s.Len() > 4 {
			t.Errorf("shard %d has %d records", i, s.Len())
		}
		for _, r := range s.records {
			all = append(all, r.Line)
		}
	}
	slices.Sort(all)
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(all, want) {
		t.Errorf("shards cover %v", all)
	}
	for _, c := range [][2]int{{3, 3}, {-1, 3}, {0, 0}, {10, 11}} {
		if _, err := d.Shard(c[0], c[1]); err == nil {
			t.Errorf("Shard(%d, %d): no error", c[0], c[1])
		}
	}
}

func BenchmarkSample(b *testing.B) {
	var k uint64
	for b.Loop() {
		Sample("bench", 3, k, 1_000_003)
		k++
	}
}
