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

// Options say how a source entry longer than the context becomes records.
type Options struct {
	// Window splits an entry longer than the context into windows of the
	// context's length instead of truncating it (docs/DATA.md, "Long
	// records").
	Window bool
	// Overlap is how many tokens each window after the first repeats from
	// the one before, as context for its first predictions; they are not
	// targets again. 0 ≤ Overlap ≤ contextLen/2; 0 repeats one token, the
	// least that lets a window's first new token be predicted.
	Overlap int
}

// Stats count what became of the entries that were not skipped.
type Stats struct {
	Entries       int // source entries that became records
	Truncated     int // entries cut to the context (without Options.Window)
	DroppedTokens int // tokens those cuts dropped
	Split         int // entries split into windows (with Options.Window)
	Windows       int // records the split entries became, first windows included
}

// Dataset is an ordered, immutable list of records.
type Dataset struct {
	records []Record
	stats   Stats
}

// Stats describes the source the dataset was loaded from; datasets made by
// Split and Shard report zero.
func (d *Dataset) Stats() Stats { return d.stats }

// Len is the number of records.
func (d *Dataset) Len() int { return len(d.records) }

// Record returns record i, 0 <= i < Len(). Its Tokens must not be modified.
func (d *Dataset) Record(i int) Record { return d.records[i] }

// Load reads path by its extension: .jsonl for JSON lines, .txt for plain
// text. contextLen is the model's context length; records are truncated to
// it.
func Load(path string, enc Encoder, contextLen int) (*Dataset, Skipped, error) {
	return LoadWith(path, enc, contextLen, Options{})
}

// LoadWith is Load with the options o for long entries.
func LoadWith(path string, enc Encoder, contextLen int, o Options) (*Dataset, Skipped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Skipped{}, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	var d *Dataset
	var skipped Skipped
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl":
		d, skipped, err = readJSONLWith(f, enc, contextLen, o)
	case ".txt":
		d, skipped, err = readTextWith(f, enc, contextLen, o)
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
	opts       Options
	records    []Record
	skipped    Skipped
	stats      Stats
}

func newBuilder(enc Encoder, contextLen int, o Options) (*builder, error) {
	if contextLen < 2 {
		return nil, fmt.Errorf("dataset: context length %d leaves nothing to predict", contextLen)
	}
	if o.Overlap < 0 || o.Overlap > contextLen/2 {
		return nil, fmt.Errorf("dataset: window overlap %d is not in [0, %d] (half the context)", o.Overlap, contextLen/2)
	}
	return &builder{enc: enc, contextLen: contextLen, opts: o}, nil
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

// add adds the entry ids, whose targets start at lossStart, as one record
// cut to the context, or, with Options.Window, as consecutive windows: a
// window starts max(Overlap, 1) tokens before the previous one ends, and
// its targets are the tokens no earlier window predicted, so every target
// of the entry is predicted exactly once. Every
// window carries the entry's key, so Split keeps an entry's windows
// together.
func (b *builder) add(line int, ids []int, lossStart int, key [sha256.Size]byte) {
	C := b.contextLen
	if lossStart >= min(len(ids), C) {
		b.skipped.note(&b.skipped.NoTargets, line, "%d tokens, loss would start at %d", min(len(ids), C), lossStart)
		return
	}
	b.stats.Entries++
	if len(ids) <= C {
		b.records = append(b.records, Record{Tokens: ids, LossStart: lossStart, Line: line, key: key})
		return
	}
	if !b.opts.Window {
		b.stats.Truncated++
		b.stats.DroppedTokens += len(ids) - C
		b.records = append(b.records, Record{Tokens: ids[:C:C], LossStart: lossStart, Line: line, key: key})
		return
	}
	b.stats.Split++
	for start, next := 0, 0; next < len(ids); {
		end := min(start+C, len(ids))
		b.records = append(b.records, Record{Tokens: ids[start:end:end], LossStart: max(lossStart-start, next-start, 1), Line: line, key: key})
		b.stats.Windows++
		next = end
		start = end - max(b.opts.Overlap, 1)
	}
}

func (b *builder) finish() (*Dataset, Skipped, error) {
	if len(b.records) == 0 {
		return nil, b.skipped, fmt.Errorf("dataset: no valid records (%d skipped: %s)", b.skipped.Total(), strings.Join(b.skipped.Examples, "; "))
	}
	return &Dataset{records: b.records, stats: b.stats}, b.skipped, nil
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
	return readJSONLWith(r, enc, contextLen, Options{})
}

func readJSONLWith(r io.Reader, enc Encoder, contextLen int, o Options) (*Dataset, Skipped, error) {
	b, err := newBuilder(enc, contextLen, o)
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
	return readTextWith(r, enc, contextLen, Options{})
}

func readTextWith(r io.Reader, enc Encoder, contextLen int, o Options) (*Dataset, Skipped, error) {
	b, err := newBuilder(enc, contextLen, o)
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
