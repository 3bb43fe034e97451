package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// expected.json is written by testdata/gen/gen.mjs with tokenizers.js, an
// implementation independent of this one, which the generator also checks
// against gpt-3-encoder (GPT-2) and llama-tokenizer-js (LLaMA).
type fixture struct {
	Tokenizers []struct {
		Name     string                     `json:"name"`
		Base     string                     `json:"base"`
		Override map[string]json.RawMessage `json:"override"`
		Cases    []struct {
			Text               string `json:"text"`
			IDs                []int  `json:"ids"`
			IDsNoSpecial       []int  `json:"ids_no_special"`
			Decoded            string `json:"decoded"`
			DecodedSkipSpecial string `json:"decoded_skip_special"`
		} `json:"cases"`
		Decodes []struct {
			IDs     []int  `json:"ids"`
			Decoded string `json:"decoded"`
		} `json:"decodes"`
	} `json:"tokenizers"`
}

var (
	baseFiles sync.Map // base name -> map[string]json.RawMessage
	baseToks  sync.Map // base name -> *Tokenizer without overrides; it is immutable
)

// loadVariant loads testdata/<base>.tokenizer.json.gz with top-level keys
// replaced by override, as the generator did.
func loadVariant(t testing.TB, base string, override map[string]json.RawMessage) *Tokenizer {
	t.Helper()
	if len(override) == 0 {
		if tok, ok := baseToks.Load(base); ok {
			return tok.(*Tokenizer)
		}
	}
	v, ok := baseFiles.Load(base)
	if !ok {
		data := readGzip(t, filepath.Join("testdata", base+".tokenizer.json.gz"))
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		v, _ = baseFiles.LoadOrStore(base, m)
	}
	m := make(map[string]json.RawMessage)
	for k, raw := range v.(map[string]json.RawMessage) {
		m[k] = raw
	}
	for k, raw := range override {
		m[k] = raw
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(override) == 0 {
		baseToks.Store(base, tok)
	}
	return tok
}

func readFixture(t *testing.T) fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tokenizers) == 0 {
		t.Fatal("no tokenizers in expected.json")
	}
	return f
}

func TestMatchesReference(t *testing.T) {
	for _, tc := range readFixture(t).Tokenizers {
		t.Run(tc.Name, func(t *testing.T) {
			tok := loadVariant(t, tc.Base, tc.Override)
			for _, c := range tc.Cases {
				for _, addSpecial := range []bool{true, false} {
					want := c.IDsNoSpecial
					if addSpecial {
						want = c.IDs
					}
					got, err := tok.Encode(c.Text, addSpecial)
					if err != nil {
						t.Fatalf("Encode(%q): %v", c.Text, err)
					}
					if !equalInts(got, want) {
						t.Errorf("Encode(%q, %v) = %v, want %v", c.Text, addSpecial, got, want)
					}
				}
				for _, skip := range []bool{false, true} {
					want := c.Decoded
					if skip {
						want = c.DecodedSkipSpecial
					}
					got, err := tok.Decode(c.IDs, skip)
					if err != nil {
						t.Fatalf("Decode(%v): %v", c.IDs, err)
					}
					if got != want {
						t.Errorf("Decode(%v, %v) = %q, want %q", c.IDs, skip, got, want)
					}
				}
			}
			for _, c := range tc.Decodes {
				got, err := tok.Decode(c.IDs, false)
				if err != nil {
					t.Fatalf("Decode(%v): %v", c.IDs, err)
				}
				if got != c.Decoded {
					t.Errorf("Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
				}
			}
		})
	}
}

func readGzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
