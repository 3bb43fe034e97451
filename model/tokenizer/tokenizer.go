// Package tokenizer loads a Hugging Face tokenizer.json and encodes and
// decodes text exactly as the Rust `tokenizers` library does, for the BPE
// tokenizers zopeer's models use: GPT-2 byte-level BPE, Qwen2-style
// byte-level BPE with its own split regex, and Llama/SentencePiece-style BPE
// with byte fallback.
//
// The pipeline is Hugging Face's: split on added tokens, normalize, pre-tokenize,
// run BPE on each piece, then add the post-processor's special tokens. Any
// component or option this package does not implement is refused at load
// time with a "tokenizer: ..." error, so a file is either encoded as Hugging
// Face would or not at all.
package tokenizer

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Tokenizer is a loaded tokenizer.json. It is immutable and safe for
// concurrent use.
type Tokenizer struct {
	model      *bpe
	added      *addedVocab
	normalizer normalizer // nil: none
	pre        preTokenizer
	post       []int   // ids the post-processor puts before the sequence
	postAfter  []int   // and after it
	decoder    decoder // nil: join tokens with " ", as Hugging Face does
	idToToken  []string
	known      []bool // by id: some token has this id
	special    []bool // by id: added token marked special
	vocabSize  int
}

// Load reads a tokenizer.json file, gzip-compressed or not.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
		}
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return t, nil
}

// VocabSize is one more than the largest token id the tokenizer can produce
// or decode, counting added tokens.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// CheckModelVocab reports an error when the tokenizer can produce ids that
// a model with an embedding table of modelVocab rows cannot look up.
// A model table larger than the tokenizer is fine (vocabularies are often
// padded to a multiple of 64 or 128).
func (t *Tokenizer) CheckModelVocab(modelVocab int) error {
	if t.vocabSize > modelVocab {
		return fmt.Errorf("tokenizer: has ids up to %d but the model's vocabulary has %d entries", t.vocabSize-1, modelVocab)
	}
	return nil
}

// TokenID returns the id of a token as spelled in tokenizer.json (for
// example "<|endoftext|>" or "<s>").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.added.byContent[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Encode tokenizes text. With addSpecial the post-processor's special tokens
// (for example Llama's leading <s>) are added, as Hugging Face's
// encode(text, add_special_tokens=True) does; added tokens written in the
// text itself are always recognised. Text must be valid UTF-8, as it always
// is in Hugging Face (a Rust String).
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("tokenizer: input is not valid UTF-8")
	}
	var ids []int
	if addSpecial {
		ids = append(ids, t.post...)
	}
	for _, seg := range t.added.split(text, t.normalizer) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		pieces, err := t.pre.preTokenize([]piece{seg.piece})
		if err != nil {
			return nil, err
		}
		for _, p := range pieces {
			ids = t.model.encodeWord(ids, p.s)
		}
	}
	if addSpecial {
		ids = append(ids, t.postAfter...)
	}
	return ids, nil
}

// Decode turns ids back into text as Hugging Face's decode does, optionally
// leaving out special added tokens. Unlike Hugging Face, which skips them
// silently, an id the tokenizer does not know is an error.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.known) || !t.known[id] {
			return "", fmt.Errorf("tokenizer: cannot decode unknown id %d", id)
		}
		if skipSpecial && t.special[id] {
			continue
		}
		tokens = append(tokens, t.idToToken[id])
	}
	if t.decoder == nil {
		return strings.Join(tokens, " "), nil
	}
	return strings.Join(t.decoder.decode(tokens), ""), nil
}
