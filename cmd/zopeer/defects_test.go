package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/model/tokenizer"
)

// generate with a Llama (SentencePiece) tokenizer keeps the space before
// the first generated word: "the cat" + "sat" reads "the cat sat".
func TestContinuationKeepsFirstSpace(t *testing.T) {
	for _, f := range []string{"llama", "gpt2"} {
		tok, err := tokenizer.Load(filepath.Join("..", "..", "model", "tokenizer", "testdata", f+".tokenizer.json.gz"))
		if err != nil {
			t.Fatal(err)
		}
		prompt, err := tok.Encode("the cat", true)
		if err != nil {
			t.Fatal(err)
		}
		all, err := tok.Encode("the cat sat on the mat", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) <= len(prompt) {
			t.Fatalf("%s: odd encoding", f)
		}
		got, err := continuation(tok, all, len(prompt))
		if err != nil {
			t.Fatal(err)
		}
		if got != " sat on the mat" {
			t.Errorf("%s: continuation %q, want %q", f, got, " sat on the mat")
		}
	}
}

// A model whose weights hold NaN or Inf is an error (exit 1) naming the
// tensor, not "loss NaN" with exit 0.
func TestEvalNonFiniteWeights(t *testing.T) {
	dir := t.TempDir()
	if err := defaults.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	lm, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := lm.Params()[1]
	p.Data[3] = float32(math.Inf(1))
	if err := lm.Save(dir, lm.DType()); err != nil {
		t.Fatal(err)
	}
	code, out, errs := zopeer(t, "eval", "--model", dir, "--data", filepath.Join(dir, defaults.EvalFile))
	if code != 1 || out != "" || !strings.Contains(errs, p.Name) || !strings.Contains(errs, "Inf") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
}

// zopeer-home/, the default home, is ignored by git.
func TestDefaultHomeIgnored(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "zopeer-home/") {
		t.Fatal(".gitignore does not ignore zopeer-home/")
	}
}
