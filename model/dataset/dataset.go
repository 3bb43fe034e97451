// Package dataset loads fine-tuning data, tokenizes it, and decides, as pure
// functions of their inputs, which record a machine trains on at each step,
// which records are held out for evaluation, and which shard each peer gets.
// docs/DATA.md describes the formats and the exact algorithms.
package dataset

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Encoder is the part of a tokenizer the dataset needs; *tokenizer.Tokenizer
// implements it.
type Encoder interface {
	Encode(text string, addSpecial bool) ([]int, error)
}

// Record is one training sequence.
type Record struct {
	// Tokens are the record's ids, with the special tokens the tokenizer's
	// post-processor adds, truncated to the context length.
	Tokens []int
	// LossStart is the first position whose token is a prediction target:
	// the loss is over predicting Tokens[i] from Tokens[:i] for
	// LossStart <= i < len(Tokens). It is at least 1 and less than
	// len(Tokens). For prompt/completion records it is where the completion
	// starts.
	LossStart int
	// Line is the 1-based line of the source where the record starts.
	Line int

	key [sha256.Size]byte // of the content, for the held-out split
}

// Skipped counts the source entries that did not become records.
type Skipped struct {
	Blank     int // blank lines in JSONL
	Malformed int // not JSON, not valid UTF-8, wrong fields or types, or untokenizable
	Empty     int // text or completion is empty
	NoTargets int // nothing left to predict, e.g. a one-token text or a prompt filling the context
	// Examples holds the first few reasons, with their line numbers.
	Examples []string
}

// Total is the number of skipped entries.
func (s Skipped) Total() int { return s.Blank + s.Malformed + s.Empty + s.NoTargets }

const maxExamples = 5

func (s *Skipped) note(count *int, line int, format string, args ...any) {
	*count++
	if len(s.Examples) < maxExamples {
		s.Examples = append(s.Examples, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
	}
}

// Dataset is an ordered, immutable list of records.
type Dataset struct {
	records []Record
}

// Len is the number of records.
func (d *Dataset) Len() int { return len(d.records) }

// Record returns record i, 0 <= i < Len(). Its Tokens must not be modified.
func (d *Dataset) Record(i int) Record { return d.records[i] }

// Load reads path by its extension: .jsonl for JSON lines, .txt for plain
// text. contextLen is the model's context length; records are truncated to
// it.
func Load(path string, enc Encoder, contextLen int) (*Dataset, Skipped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Skipped{}, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	var d *Dataset
	var skipped Skipped
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl":
		d, skipped, err = ReadJSONL(f, enc, contextLen)
	case ".txt":
		d, skipped, err = ReadText(f, enc, contextLen)
	default:
		return nil, Skipped{}, fmt.Errorf("dataset: %s: unknown extension %q (want .jsonl or .txt)", path, ext)
	}
	if err != nil {
		return nil, skipped, fmt.Errorf("%w (in %s)", err, path)
	}
	return d, skipped, nil
}

// builder turns source entries into records.
type builder struct {
	enc        Encoder
	contextLen int
	records    []Record
	skipped    Skipped
}

func newBuilder(enc Encoder, contextLen int) (*builder, error) {
	if contextLen < 2 {
		return nil, fmt.Errorf("dataset: context length %d leaves nothing to predict", contextLen)
	}
	return &builder{enc: enc, contextLen: contextLen}, nil
}

// contentKey hashes a record's text fields, length-prefixed so that field
// boundaries matter, under a label naming the format version.
func contentKey(kind string, fields ...string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte("zopeer/dataset/record/v1\x00" + kind + "\x00"))
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// addText adds a record with loss on all of it.
func (b *builder) addText(line int, text string) {
	if text == "" {
		b.skipped.note(&b.skipped.Empty, line, "empty text")
		return
	}
	ids, err := b.enc.Encode(text, true)
	if err != nil {
		b.skipped.note(&b.skipped.Malformed, line, "%v", err)
		return
	}
	b.add(line, ids, 1, contentKey("text", text))
}

// addPair adds a record with loss on the completion only. The record is the
// tokenization of prompt+completion, exactly what the tokenizer gives for
// the whole text; the loss starts after the longest prefix it shares with
// the tokenization of the prompt alone, so a token that straddles the
// boundary counts as completion.
func (b *builder) addPair(line int, prompt, completion string) {
	if completion == "" {
		b.skipped.note(&b.skipped.Empty, line, "empty completion")
		return
	}
	ids, err := b.enc.Encode(prompt+completion, true)
	if err != nil {
		b.skipped.note(&b.skipped.Malformed, line, "%v", err)
		return
	}
	promptIDs, err := b.enc.Encode(prompt, true)
	if err != nil {
		b.skipped.note(&b.skipped.Malformed, line, "%v", err)
		return
	}
	start := 0
	for start < len(ids) && start < len(promptIDs) && ids[start] == promptIDs[start] {
		start++
	}
	b.add(line, ids, max(start, 1), contentKey("prompt/completion", prompt, completion))
}

func (b *builder) add(line int, ids []int, lossStart int, key [sha256.Size]byte) {
	if len(ids) > b.contextLen {
		ids = ids[:b.contextLen:b.contextLen]
	}
	if lossStart >= len(ids) {
		b.skipped.note(&b.skipped.NoTargets, line, "%d tokens, loss would start at %d", len(ids), lossStart)
		return
	}
	b.records = append(b.records, Record{Tokens: ids, LossStart: lossStart, Line: line, key: key})
}

func (b *builder) finish() (*Dataset, Skipped, error) {
	if len(b.records) == 0 {
		return nil, b.skipped, fmt.Errorf("dataset: no valid records (%d skipped: %s)", b.skipped.Total(), strings.Join(b.skipped.Examples, "; "))
	}
	return &Dataset{records: b.records}, b.skipped, nil
}

// jsonRecord is one JSONL line: {"text": ...} or {"prompt": ..., "completion": ...}.
type jsonRecord struct {
	Text       *string `json:"text"`
	Prompt     *string `json:"prompt"`
	Completion *string `json:"completion"`
}

// ReadJSONL reads JSON lines, each {"text": ...} (loss on all of it) or
// {"prompt": ..., "completion": ...} (loss on the completion). Other fields
// are ignored. Blank and malformed lines are skipped and counted; it is an
// error only when no record remains or reading fails.
func ReadJSONL(r io.Reader, enc Encoder, contextLen int) (*Dataset, Skipped, error) {
	b, err := newBuilder(enc, contextLen)
	if err != nil {
		return nil, Skipped{}, err
	}
	err = eachLine(r, func(line int, data []byte) {
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			b.skipped.Blank++
			return
		}
		// encoding/json would silently turn invalid UTF-8 into U+FFFD.
		if !utf8.Valid(data) {
			b.skipped.note(&b.skipped.Malformed, line, "not valid UTF-8")
			return
		}
		var rec jsonRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			b.skipped.note(&b.skipped.Malformed, line, "%v", err)
			return
		}
		switch {
		case rec.Text != nil && rec.Prompt == nil && rec.Completion == nil:
			b.addText(line, *rec.Text)
		case rec.Text == nil && rec.Prompt != nil && rec.Completion != nil:
			b.addPair(line, *rec.Prompt, *rec.Completion)
		default:
			b.skipped.note(&b.skipped.Malformed, line, `want "text" alone, or "prompt" and "completion"`)
		}
	})
	if err != nil {
		return nil, b.skipped, err
	}
	return b.finish()
}

// ReadText reads plain text with one record per paragraph: a maximal run of
// lines that are not blank (empty or only whitespace), joined with "\n".
// "\r\n" line ends count as "\n". Lines inside a paragraph keep their
// leading and trailing spaces. A paragraph with a line that is not valid
// UTF-8 is skipped as malformed.
func ReadText(r io.Reader, enc Encoder, contextLen int) (*Dataset, Skipped, error) {
	b, err := newBuilder(enc, contextLen)
	if err != nil {
		return nil, Skipped{}, err
	}
	var para []string
	start, bad := 0, false
	flush := func() {
		switch {
		case bad:
			b.skipped.note(&b.skipped.Malformed, start, "paragraph is not valid UTF-8")
		case len(para) > 0:
			b.addText(start, strings.Join(para, "\n"))
		}
		para, bad = para[:0], false
	}
	err = eachLine(r, func(line int, data []byte) {
		if len(bytes.TrimSpace(data)) == 0 {
			flush()
			return
		}
		if len(para) == 0 && !bad {
			start = line
		}
		if !utf8.Valid(data) {
			bad = true
			return
		}
		para = append(para, string(data))
	})
	if err != nil {
		return nil, b.skipped, err
	}
	flush()
	return b.finish()
}

// eachLine calls fn with each line (1-based number, without its line end),
// however long it is.
func eachLine(r io.Reader, fn func(line int, data []byte)) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		data, err := br.ReadBytes('\n')
		if len(data) > 0 {
			data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
			fn(line, data)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dataset: reading line %d: %w", line, err)
		}
	}
}
